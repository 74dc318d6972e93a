"""Judges of a policy's response against a reference: a reward model, or an LLM behind an OpenAI-compatible API.

Each judge returns, per pair, the policy's share of the verdict in [0, 1] (1 = policy better, 0.5 = tie).

The LLM judge asks AlpacaEval's pairwise question (modelled on the ``alpaca_eval_clf_gpt4_turbo``
annotator of tatsu-lab/alpaca_eval: the instruction, two outputs under identifiers, "reply with the
identifier of the best output", only the first character counts). It asks both orders, policy
first and reference first, and averages them, so a judge that always picks one position gives a tie.
An answer that is neither identifier counts as a tie (``unparsed``). Every answer is appended to a
JSONL cache keyed by (judge, prompt, policy response, reference response, order), so rerunning a
command, or resuming an interrupted one, sends only the requests it has not answered yet.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from itero.errors import IteroError

PROMPT_VERSION = "pairwise-v1"  # part of the cache key: a changed prompt is a different judge
SYSTEM = (
    "You are a careful and impartial judge of AI assistants. You compare the responses of two assistants "
    "to the same instruction and pick the one a thoughtful human would prefer."
)
USER = """Below is an instruction given to two assistants, followed by their responses.

## Instruction

{instruction}

## Responses

Each response is labelled with an identifier.

{{"identifier": "A", "response": \"\"\"{first}\"\"\"}}

{{"identifier": "B", "response": \"\"\"{second}\"\"\"}}

## Task

Judge which response is better: more helpful, correct, relevant and clear, regardless of its length or of
the order in which they are shown. Reply with the identifier of the better response, A or B. Only the first
character of your reply is read, so write that identifier and nothing else."""
ORDERS = ("policy_first", "reference_first")


class JudgeError(IteroError, RuntimeError):
    """The judge could not give a verdict (unreachable, refused, or a malformed answer)."""


def parse_base_url(url: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path prefix) of ``http(s)://HOST[:PORT][/PREFIX]``; a bad URL is a JudgeError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JudgeError(f"--base-url {url!r}: give http(s)://HOST[:PORT]/v1, e.g. http://127.0.0.1:8000/v1")
    return parts.scheme, parts.hostname, parts.port, parts.path.rstrip("/")


class JudgeCache:
    """Answers on disk, one JSON object per line; appended as they arrive, so a crash loses at most one."""

    def __init__(self, path: Path):
        self.path, self.lock, self.answers = Path(path), threading.Lock(), {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                    self.answers[record["key"]] = record["answer"]
                except (json.JSONDecodeError, KeyError, TypeError):  # a line cut short by a crash
                    continue

    @staticmethod
    def key(judge: str, prompt: str, policy: str, reference: str, order: str) -> str:
        return hashlib.sha256(json.dumps([judge, prompt, policy, reference, order]).encode()).hexdigest()

    def get(self, key: str) -> str | None:
        return self.answers.get(key)

    def put(self, key: str, answer: str, order: str) -> None:
        with self.lock:
            self.answers[key] = answer
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "order": order, "answer": answer}) + "\n")


def policy_share(answer: str, order: str) -> float | None:
    """1 if the answer picks the policy's response, 0 the reference's, None if it names neither."""
    picked = answer.strip()[:1]
    if picked not in ("A", "B"):
        return None
    return float((picked == "A") == (order == "policy_first"))


class OpenAIJudge:
    """An LLM judge through ``POST {base_url}/chat/completions``, temperature 0, with bounded retries."""

    def __init__(
        self,
        model: str,
        base_url: str,
        cache: JudgeCache,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        tries: int = 5,
        backoff: float = 1.0,
        workers: int = 8,
    ):
        self.model, self.base_url, self.cache = model, base_url, cache
        self.scheme, self.host, self.port, self.prefix = parse_base_url(base_url)
        self.api_key, self.timeout, self.tries, self.backoff, self.workers = api_key, timeout, tries, backoff, workers
        self.name = f"openai:{model}/{PROMPT_VERSION}"
        self.requests = 0  # HTTP requests sent, retries included
        self._count = threading.Lock()

    def judge(self, prompts: Sequence[str], policy: Sequence[str], reference: Sequence[str]) -> list[dict]:
        """Per pair: the answer and policy share in each order, ``preference`` (their mean), ``unparsed``."""
        jobs = [(p, a, b, order) for p, a, b in zip(prompts, policy, reference, strict=True) for order in ORDERS]
        failed = threading.Event()

        def ask(job):
            if failed.is_set():  # a judge that failed its retries would fail the rest: stop asking
                return None
            try:
                return self.ask(*job)
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(self.workers) as pool:
            answers = list(pool.map(ask, jobs))
        out = []
        for i in range(len(prompts)):
            row = {"judge": self.name}
            shares = []
            for order, answer in zip(ORDERS, answers[2 * i : 2 * i + 2]):
                share = policy_share(answer, order)
                row[order] = {"answer": answer, "policy_share": share}
                shares.append(0.5 if share is None else share)
            row["unparsed"] = sum(row[o]["policy_share"] is None for o in ORDERS)
            row["preference"] = sum(shares) / 2
            out.append(row)
        return out

    def ask(self, prompt: str, policy: str, reference: str, order: str) -> str:
        key = self.cache.key(self.name, prompt, policy, reference, order)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        first, second = (policy, reference) if order == "policy_first" else (reference, policy)
        answer = self.complete(USER.format(instruction=prompt, first=first, second=second))
        self.cache.put(key, answer, order)
        return answer

    def complete(self, user: str) -> str:
        payload = {
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
            "temperature": 0,
            "max_tokens": 4,
        }
        last = ""
        for attempt in range(self.tries):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))
            try:
                status, body = self._post(json.dumps(payload).encode())
            except (OSError, http.client.HTTPException) as err:  # refused, reset, timed out
                last = f"{type(err).__name__}: {err}".rstrip(": ")
                continue
            if status == 429 or status >= 500:  # overloaded or failing: worth another try
                last = f"HTTP {status}"
                continue
            if status != 200:
                raise JudgeError(
                    f"judge {self.model} at {self.base_url} refused the request: HTTP {status} {body[:200]!r}"
                )
            try:
                return str(json.loads(body)["choices"][0]["message"]["content"] or "")
            except (json.JSONDecodeError, KeyError, IndexError, TypeError):
                last = f"malformed answer {body[:200]!r}"
        raise JudgeError(f"judge {self.model} at {self.base_url} gave no answer after {self.tries} tries ({last})")

    def _post(self, body: bytes) -> tuple[int, str]:
        with self._count:
            self.requests += 1
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        connection = kind(self.host, self.port, timeout=self.timeout)
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            connection.request("POST", f"{self.prefix}/chat/completions", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", errors="replace")
        finally:
            connection.close()


class RewardModelJudge:
    """Win when r(prompt, policy) > r(prompt, reference), half on a tie; one order suffices (scores are separate)."""

    def __init__(self, path: str, batch_size: int = 16, device: str = "cpu"):
        from itero.rewards.reward_model import RewardModel

        self.name = f"rm:{path}"
        self.model = RewardModel.from_pretrained(path, batch_size=batch_size, device=device)

    def judge(self, prompts: Sequence[str], policy: Sequence[str], reference: Sequence[str]) -> list[dict]:
        from itero.evaluation.chat_metrics import preference_from_scores

        mine = self.model.raw_scores(prompts, policy).tolist()
        theirs = self.model.raw_scores(prompts, reference).tolist()
        return [
            {"judge": self.name, "policy_score": a, "reference_score": b, "preference": preference_from_scores(a, b)}
            for a, b in zip(mine, theirs)
        ]
