"""`lepton.Client` against a real function server."""

from __future__ import annotations

import pytest

import lepton
from tests.helpers import free_port


def test_call_and_stream(serve):
    add = serve("kinds/main.py:add")
    with lepton.Client(add.url) as client:
        assert client.call("/", {"a": 1, "b": 2}) == 3
        with pytest.raises(lepton.InvocationError) as info:
            client.call("/", {"a": "x"})
        assert info.value.status_code == 422 and "a: Input should be a valid integer" in str(info.value)
    count = serve("kinds/main.py:count")
    with lepton.Client(count.url) as client:
        assert list(client.call_stream("/", {"n": 3})) == [0, 1, 2]


def test_unreachable_platform_is_a_clear_error():
    with lepton.Client(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(lepton.ConnectError, match="is the platform up"):
            client.invoke("add", a=1)


def test_token_and_url_precedence(monkeypatch, lepton_home):
    lepton_home.mkdir(parents=True)
    (lepton_home / "token").write_text("from-file\n")
    assert lepton.Client().token == "from-file"
    monkeypatch.setenv("LEPTON_TOKEN", "from-env")
    monkeypatch.setenv("LEPTON_URL", "http://example.invalid:1/")
    client = lepton.Client()
    assert (client.token, client.url) == ("from-env", "http://example.invalid:1")
    assert lepton.Client(url="http://127.0.0.1:2", token="from-arg").token == "from-arg"
