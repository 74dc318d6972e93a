"""The OpenAI-compatible LLM judge against a fake server on 127.0.0.1: both orders, the cache, retries, failure."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from itero.evaluation.chat_judges import JudgeCache, JudgeError, OpenAIJudge, parse_base_url


class FakeJudge(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions: picks the response containing "good", or always "A" when biased."""

    def do_POST(self):
        server = self.server
        with server.lock:
            server.requests.append(self.path)
            failure = server.failures.pop(0) if server.failures else None
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if failure == "hang":
            time.sleep(1.0)  # longer than the client's timeout
            return
        if failure is not None:
            self.send_response(failure)
            self.end_headers()
            return
        user = body["messages"][-1]["content"]
        first = re.search(r'"identifier": "A", "response": """(.*?)"""', user, re.S).group(1)
        verdict = "A" if server.biased or "good" in first else "B"
        self._send({"choices": [{"message": {"role": "assistant", "content": verdict}}]})

    def _send(self, data):
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudge)
    srv.lock, srv.requests, srv.failures, srv.biased = threading.Lock(), [], [], False
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def judge_for(server, tmp_path, **kwargs):
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    options = {"backoff": 0.01, "workers": 2, **kwargs}
    return OpenAIJudge("fake-judge", url, JudgeCache(tmp_path / "cache.jsonl"), **options)


PROMPTS = ["User: 1+2?", "User: 2+2?", "User: 0+4?"]
POLICY = ["good 3", "bad 5", "good 4"]
REFERENCE = ["bad 2", "good 4", "bad 1"]


def test_both_orders_are_asked_and_a_rerun_comes_from_the_cache(server, tmp_path):
    rows = judge_for(server, tmp_path).judge(PROMPTS, POLICY, REFERENCE)
    assert [r["preference"] for r in rows] == [1.0, 0.0, 1.0]
    assert all(r["policy_first"]["answer"] != r["reference_first"]["answer"] for r in rows)  # both orders, consistent
    assert len(server.requests) == 6 and set(server.requests) == {"/v1/chat/completions"}

    again = judge_for(server, tmp_path)  # a fresh judge reading the same cache file: no new request
    assert again.judge(PROMPTS, POLICY, REFERENCE) == rows
    assert again.requests == 0 and len(server.requests) == 6


def test_a_position_biased_judge_gives_ties(server, tmp_path):
    server.biased = True
    rows = judge_for(server, tmp_path).judge(PROMPTS, POLICY, REFERENCE)
    assert [r["preference"] for r in rows] == [0.5, 0.5, 0.5]


def test_a_server_error_is_retried(server, tmp_path):
    server.failures = [500, 503]
    judge = judge_for(server, tmp_path, workers=1)
    rows = judge.judge(PROMPTS[:1], POLICY[:1], REFERENCE[:1])
    assert rows[0]["preference"] == 1.0
    assert judge.requests == 4 and len(server.requests) == 4  # 500, 503, then the two orders


def test_a_server_that_never_answers_fails_with_one_line_after_bounded_tries(server, tmp_path):
    server.failures = ["hang"] * 3
    judge = judge_for(server, tmp_path, workers=1, timeout=0.2, tries=3)
    with pytest.raises(JudgeError) as err:
        judge.judge(PROMPTS[:1], POLICY[:1], REFERENCE[:1])
    message = str(err.value)
    assert "\n" not in message and "no answer after 3 tries" in message and "fake-judge" in message
    assert judge.requests == 3
    assert not (tmp_path / "cache.jsonl").exists()  # nothing cached from a failure


def test_a_client_error_is_not_retried(server, tmp_path):
    server.failures = [404]
    judge = judge_for(server, tmp_path, workers=1)
    with pytest.raises(JudgeError, match="HTTP 404"):
        judge.judge(PROMPTS[:1], POLICY[:1], REFERENCE[:1])
    assert judge.requests == 1


def test_an_unparsable_answer_counts_as_a_tie(tmp_path):
    cache = JudgeCache(tmp_path / "cache.jsonl")
    judge = OpenAIJudge("m", "http://127.0.0.1:9/v1", cache)
    for order in ("policy_first", "reference_first"):
        cache.put(cache.key(judge.name, "p", "x", "y", order), "I cannot decide", order)
    (row,) = judge.judge(["p"], ["x"], ["y"])
    assert row["preference"] == 0.5 and row["unparsed"] == 2 and judge.requests == 0


def test_a_cache_line_cut_short_is_skipped(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text('{"key": "k", "order": "policy_first", "answer": "A"}\n{"key": "j", "ans')
    assert JudgeCache(path).answers == {"k": "A"}


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1", "ftp://host/v1", "http:///v1"])
def test_a_bad_base_url_is_one_line(url):
    with pytest.raises(JudgeError, match="--base-url"):
        parse_base_url(url)


def test_eval_chat_with_the_llm_judge_reruns_from_its_cache(server, tmp_path, capsys):
    from helpers import tiny

    from itero.cli import main
    from itero.models.tiny import save_tiny

    model, tok = tiny(seed=0)
    policy = save_tiny(tmp_path / "policy", model, tok)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "reference": r}) + "\n" for p, r in zip(PROMPTS, REFERENCE)))
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    args = ["eval-chat", "--policy", str(policy), "--prompts", str(prompts), "--reference-field", "reference"]
    args += ["--judge", "openai:fake-judge", "--base-url", url, "--max-new-tokens", "4", "--out", str(tmp_path / "out")]
    assert main(args) == 0, capsys.readouterr().err
    first = json.loads((tmp_path / "out" / "chat_eval.json").read_text())
    assert len(server.requests) == 6  # 3 prompts, both orders
    # the policy writes noise without "good": it loses to the "good" reference, and where neither is good the
    # fake judge picks B in both orders, a position bias that averages to a tie: (0.5 + 0 + 0.5) / 3
    assert first["win_rate"] == pytest.approx(1 / 3) and first["judge"] == "openai:fake-judge/pairwise-v1"
    assert main(args) == 0
    assert len(server.requests) == 6  # the rerun asked nothing
    assert json.loads((tmp_path / "out" / "chat_eval.json").read_text()) == first
