"""Batch handlers: concurrent callers share one call; one bad item fails only its caller."""

from __future__ import annotations

import concurrent.futures

import httpx


def _call_all(url: str, values: list[int]) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(len(values)) as pool:
        return list(pool.map(lambda x: httpx.post(url, json={"xs": x}, timeout=10), values))


def test_concurrent_callers_share_a_batch_and_get_their_own_result(serve):
    fn = serve("kinds/main.py:batched_square")
    responses = _call_all(fn.url, list(range(8)))
    results = [r.json() for r in responses]
    assert [r["square"] for r in results] == [x * x for x in range(8)]
    assert max(r["batch"] for r in results) > 1
    metrics = httpx.get(fn.url + "/metrics").text
    count = next(line for line in metrics.splitlines() if line.startswith("lepton_batch_size_count"))
    assert float(count.split()[-1]) < 8  # fewer handler calls than callers


def test_one_failing_item_does_not_fail_the_others(serve):
    fn = serve("kinds/main.py:batched_square")
    responses = _call_all(fn.url, [1, 2, -3, 4])
    by_input = dict(zip([1, 2, -3, 4], responses))
    assert by_input[-3].status_code == 500 and "negative input" in by_input[-3].json()["detail"]
    for x in (1, 2, 4):
        assert by_input[x].status_code == 200 and by_input[x].json()["square"] == x * x


def test_single_values_are_validated_before_batching(serve):
    fn = serve("kinds/main.py:batched_square")
    response = httpx.post(fn.url, json={"xs": [1, 2]})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "xs"]
