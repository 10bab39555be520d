"""``python -m infra.modelrepo --spec spec.json --templates DIR --out DIR [--tokenizer-config FILE]``: the build
Job's step that writes the model repository. Exit 0, or non-zero with the located message on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import RepoError, RepoSpec, build_repository


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.modelrepo", description=__doc__)
    p.add_argument("--spec", required=True, type=Path, help="RepoSpec as JSON")
    p.add_argument("--templates", required=True, type=Path, help="a release's all_models (e.g. /app/all_models)")
    p.add_argument("--out", required=True, type=Path, help="new or empty directory for the model repository")
    p.add_argument("--tokenizer-config", type=Path, help="the checkpoint's tokenizer_config.json (chat template)")
    args = p.parse_args(argv)
    try:
        try:
            data = json.loads(args.spec.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RepoError(str(args.spec), f"cannot read the spec: {e}") from None
        spec = RepoSpec.from_dict(data, str(args.spec))
        written = build_repository(spec, args.templates, args.out, tokenizer_config=args.tokenizer_config)
    except RepoError as e:
        print(f"model repository not built: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
