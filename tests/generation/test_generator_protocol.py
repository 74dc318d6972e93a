"""Both backends meet the whole Generator protocol, so callers never ask a backend what it has."""

import ast
import inspect

import pytest

from itero.generation import vllm
from itero.generation.base import Generator
from itero.generation.hf import HFGenerator

BACKENDS = [HFGenerator, vllm.VLLMGenerator]
METHODS = sorted(n for n, v in vars(Generator).items() if inspect.isfunction(v) and not n.startswith("_"))


def attributes(cls) -> set[str]:
    """Class attributes and the ``self.x = ...`` of ``__init__``: vLLM's engine needs a GPU to build."""
    tree = ast.parse(inspect.getsource(cls.__init__).strip())
    assigned = {
        t.attr
        for node in ast.walk(tree)
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }
    return assigned | set(vars(cls))


def test_the_protocol_declares_what_its_callers_use():
    assert {"generate", "continue_from", "update_weights", "load_adapter"} <= set(METHODS)
    assert {"batch_size", "tokenizer", "pad_token_id"} <= set(Generator.__annotations__)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda c: c.__name__)
def test_a_backend_has_every_attribute(backend):
    assert set(Generator.__annotations__) <= attributes(backend)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", METHODS)
def test_a_backend_takes_every_argument_of_every_method(backend, name):
    declared = inspect.signature(getattr(Generator, name)).parameters
    implemented = inspect.signature(getattr(backend, name)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in implemented.values()):
        return  # takes any keyword: ``update_weights(*args, **kwargs)``
    for param in list(declared.values())[1:]:
        assert param.name in implemented, f"{backend.__name__}.{name} lacks {param.name}"
        if param.default is not param.empty:
            assert implemented[param.name].default is not param.empty, f"{backend.__name__}.{name}({param.name}=)"
