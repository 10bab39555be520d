import pytest

from devtools.standin.testing import StandInThread


def _thread(profile, **kw):
    t = StandInThread(profile, **kw).start()
    return t


@pytest.fixture(scope="module")
def chat(e2e):
    t = _thread("chat")
    yield t
    t.stop()


@pytest.fixture(scope="module")
def chat_nd(e2e):
    t = _thread("chat", decoupled=False)
    yield t
    t.stop()


@pytest.fixture(scope="module")
def vision(e2e):
    t = _thread("vision")
    yield t
    t.stop()


@pytest.fixture(scope="module")
def image(e2e):
    t = _thread("image", image_width=48, image_height=32)
    yield t
    t.stop()
