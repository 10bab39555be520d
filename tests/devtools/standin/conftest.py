import pytest

from devtools.standin.testing import StandInThread


def _thread(profile, **kw):
    t = StandInThread(profile, **kw).start()
    return t


@pytest.fixture(scope="module")
def chat():
    t = _thread("chat")
    yield t
    t.stop()


@pytest.fixture(scope="module")
def chat_nd():
    t = _thread("chat", decoupled=False)
    yield t
    t.stop()


@pytest.fixture(scope="module")
def vision():
    t = _thread("vision")
    yield t
    t.stop()


@pytest.fixture(scope="module")
def image():
    t = _thread("image", image_width=48, image_height=32)
    yield t
    t.stop()
