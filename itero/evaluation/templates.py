"""Prompt templates: text with a ``{problem}`` slot, chosen by name, file or string (never code).

Named templates are the files in ``templates/`` (``<name>.txt``, or ``<name>.chat.txt`` for a user
message that goes through the tokenizer's chat template). As in any text file, the file's final
newline is not part of the template: ``qwen25-math-cot.txt`` ends in a blank line because its
prompt ends in ``assistant\\n``. ``templates/stops.json`` holds the stop strings a named template's
source generates with (a few-shot prompt must stop before the model writes the next question).

    qwen25-math-cot  Qwen2.5-Math evaluation (simpleRL / Online-DPO-R1 tables), ChatML written out
    online-dpo-r1    problem + " Let's think step by step ...", through the chat template
    vineppo-math     VinePPO's "[MATH_TASK] Problem:\\n{query}\\n\\nSolution:"
    gsm8k-fewshot    four worked GSM8K-style examples of the chain-of-thought paper (Wei et al., 2022)
    plain            the problem alone (tiny models)

A user's own template: a file path (``*.chat.txt`` = chat), ``chat:`` + a string, or a string with
``{problem}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from itero.schema import ConfigError

TEMPLATE_DIR = Path(__file__).parent / "templates"
SLOT = "{problem}"
CHAT_SUFFIX = ".chat.txt"
CHAT_PREFIX = "chat:"


@dataclass(frozen=True)
class Template:
    name: str
    text: str  # contains {problem}; for a chat template, the user message
    chat: bool = False
    stop: tuple[str, ...] = ()

    def render(self, problem: str, tokenizer=None) -> str:
        message = self.text.replace(SLOT, problem)
        if not self.chat:
            return message
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
            )
        return message + "\n"  # no chat template (e.g. the tiny character tokenizer): the plain message

    def encode(self, problem: str, tokenizer) -> list[int]:
        # A chat template writes its own BOS; a plain prompt gets the tokenizer's special tokens, as
        # vLLM adds them to the text prompts of the sources' harnesses (a Llama model needs its BOS).
        return tokenizer.encode(self.render(problem, tokenizer), add_special_tokens=not self.chat)


def named_templates() -> list[str]:
    return sorted(p.name.removesuffix(CHAT_SUFFIX).removesuffix(".txt") for p in TEMPLATE_DIR.glob("*.txt"))


def load_template(spec: str, stop: tuple[str, ...] = ()) -> Template:
    """A named template, a template file, ``chat:<text>`` or a string with {problem}; ``stop`` adds stop strings."""
    named = _named_file(spec)
    if named is not None:
        template = _from_file(named, spec, _named_stops().get(spec, ()))
    elif spec.startswith(CHAT_PREFIX):
        template = Template("chat-string", spec[len(CHAT_PREFIX) :], chat=True)
    elif SLOT in spec:
        template = Template("string", spec)
    elif Path(spec).expanduser().is_file():
        template = _from_file(Path(spec).expanduser(), spec, ())
    else:
        raise ConfigError(
            f"template {spec!r} is not a named template ({', '.join(named_templates())}), not a file, "
            f"and has no {SLOT} slot; give one of those"
        )
    if SLOT not in template.text:
        raise ConfigError(f"template {spec!r} has no {SLOT} slot, so every prompt would be the same")
    return Template(template.name, template.text, template.chat, template.stop + tuple(stop))


def _named_file(name: str) -> Path | None:
    if "/" in name or not name:
        return None
    for candidate in (TEMPLATE_DIR / f"{name}.txt", TEMPLATE_DIR / f"{name}{CHAT_SUFFIX}"):
        if candidate.is_file():
            return candidate
    return None


def _from_file(path: Path, name: str, stop: tuple[str, ...]) -> Template:
    text = path.read_text(encoding="utf-8")
    text = text[:-1] if text.endswith("\n") else text
    return Template(name, text, chat=path.name.endswith(CHAT_SUFFIX), stop=tuple(stop))


def _named_stops() -> dict[str, tuple[str, ...]]:
    data = json.loads((TEMPLATE_DIR / "stops.json").read_text(encoding="utf-8"))
    return {name: tuple(stops) for name, stops in data.items() if not name.startswith("_")}
