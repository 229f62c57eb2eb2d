"""`lepton.Client` against a real function server."""

from __future__ import annotations

import pytest

import lepton
from tests.helpers import FUNCTIONS, free_port


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


def test_map_inputs_become_the_parameters_by_name():
    from lepton.jobs import function_payloads
    from lepton.loader import load_functions

    kinds = load_functions(str(FUNCTIONS / "kinds" / "main.py"))
    add, checkout, square = kinds["add"], kinds["checkout"], kinds["batched-square"]
    order = {"item": "tea", "quantity": 2}
    assert list(function_payloads(add, [{"a": 1, "b": 2}, (3, 4), (5,)])) == [{"a": 1, "b": 2}, {"a": 3, "b": 4}, {"a": 5}]
    assert list(function_payloads(square, [3, (4,)])) == [{"xs": 3}, {"xs": 4}]  # a batch caller sends one value
    order_model = checkout.signature.input_model
    assert list(function_payloads(checkout, [order_model(**order), order])) == [order, order]  # the model is the body
    with pytest.raises(TypeError, match=r"'add' takes 2 parameter\(s\) \(a, b\); give each input to map as a dict"):
        list(function_payloads(add, [7]))
    with pytest.raises(TypeError, match=r"not \(1, 2\)"):
        list(function_payloads(square, [(1, 2)]))
    with pytest.raises(TypeError, match="'count' is a stream function"):
        function_payloads(kinds["count"], [1])


def test_map_concurrency_defaults_to_what_the_replicas_take():
    from lepton.jobs import default_concurrency

    assert default_concurrency(lepton.FunctionSpec(name="f", max_scale=2, concurrency=4)) == 8
    assert default_concurrency(lepton.FunctionSpec(name="f", max_scale=3, target=2.5)) == 9
    assert default_concurrency(lepton.FunctionSpec(name="f")) == 64  # 10 replicas x target 10, capped
