"""What the console's GitHub identity may hold: the least that opens a pull request on one repository, checked at
start-up against what the installation was granted (GET /repos/{owner}/{repo}/installation → `permissions`,
`repository_selection`; GitHub's REST description, components/schemas/installation, npm @octokit/openapi 23.0.2).

Every installation token the gateway mints asks for exactly TOKEN (and the one repository), so even an App
installed with more yields tokens with no more; an installation that holds administration or workflows, any other
write, or every repository of the account is refused all the same: its private key could mint more than this.
"""

from __future__ import annotations

from collections.abc import Mapping

REQUIRED = {"contents": "write", "pull_requests": "write"}  # a branch, one commit, the pull request
OPTIONAL = {"checks": "read"}  # the gate's conclusion on the pull request's head (shown when granted)
IMPLIED = {"metadata": "read"}  # every App has it (GitHub grants it with any repository permission)
FORBIDDEN = ("administration", "workflows")
_LEVEL = {"read": 1, "write": 2, "admin": 3}


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()


def check_installation(permissions: Mapping[str, str], repository_selection: str) -> tuple[list[str], dict[str, str]]:
    """(problems, the permissions to ask each token for). No problem: the installation is least-privilege."""
    problems = []
    for name in FORBIDDEN:
        if name in permissions:
            problems.append(
                f"the installation has {_title(name)}: {permissions[name]}; the console never needs it — remove it "
                "from the App's permissions"
            )
    for name, level in REQUIRED.items():
        have = permissions.get(name)
        if _LEVEL.get(have or "", 0) < _LEVEL[level]:
            problems.append(f"the installation needs {_title(name)}: {level} (it has {have or 'none'})")
    allowed = {**REQUIRED, **OPTIONAL, **IMPLIED}
    for name, level in sorted(permissions.items()):
        if name in FORBIDDEN or name in REQUIRED:
            continue
        if name not in allowed or _LEVEL.get(level, 3) > _LEVEL[allowed[name]]:
            problems.append(f"the installation has {_title(name)}: {level}, more than the console needs — remove it")
    if repository_selection != "selected":
        problems.append(
            "the App is installed on all repositories of the account; install it on the catalog's repository only "
            "(Only select repositories)"
        )
    token = dict(REQUIRED)
    token.update({n: lvl for n, lvl in OPTIONAL.items() if n in permissions})
    return problems, token


def check_token(token: str) -> list[str]:
    """The fallback identity: a fine-grained personal access token (GitHub shows no API for its permissions; the
    docs say which to choose). A classic token (ghp_) carries scopes over every repository the user can reach."""
    if token.startswith("github_pat_"):
        return []
    return [
        "the GitHub token is not a fine-grained personal access token (github_pat_…); create one limited to the "
        "catalog's repository with Contents and Pull requests: read and write, nothing else"
    ]
