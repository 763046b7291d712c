"""A mypy plugin that names the expected input type when a chain or continuation
gets the wrong one.

Without it, ``app.enqueue_job_chain(tx, image_chain, DistributeInput(...))`` makes
mypy say ``Cannot infer value of type parameter "InT"``: the input type is a type
parameter shared by the chain and the input arguments, and mypy does not say which
of the two disagrees. The plugin takes the input type from the chain (or queue)
argument first, so mypy reports ``Argument 3 ... has incompatible type
"DistributeInput"; expected "ImageInput"``. Enable it in the project's mypy
configuration::

    [tool.mypy]
    plugins = ["queuert.mypy_plugin"]

pyright needs no plugin: it binds the type parameter from the chain argument,
left to right, and reports the input argument the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.maptype import map_instance_to_supertype
from mypy.plugin import FunctionSigContext, MethodSigContext, Plugin
from mypy.types import CallableType, FunctionLike, Instance, get_proper_type

_QUEUE_DEF = "queuert.definitions.QueueDef"

# Method -> (the argument holding the chain or queue, the input's type variable).
_BINDINGS = {
    "queuert.client.Queuert.enqueue_job_chain": ("chain", "InT"),
    "queuert.client.Queuert.enqueue_job_chains": ("chain", "InT"),
    "queuert.sync.SyncClient.enqueue_job_chain": ("chain", "InT"),
    "queuert.sync.SyncClient.enqueue_job_chains": ("chain", "InT"),
    "queuert.context.EnqueueJob.__call__": ("queue", "StepInT"),
    "queuert.context._Enqueuer.__call__": ("queue", "StepInT"),
}


class QueuertPlugin(Plugin):
    """Binds the input type of queuert's own calls. An integration built on core that
    offers module-level functions of the same shape ships a subclass that extends
    :attr:`function_bindings` and names it as its own plugin."""

    function_bindings: dict[str, tuple[str, str]] = {}
    """Function full name -> (the argument holding the chain, the input's type variable)."""

    def get_method_signature_hook(
        self, fullname: str
    ) -> Callable[[MethodSigContext], FunctionLike] | None:
        binding = _BINDINGS.get(fullname)
        if binding is None:
            return None
        argument, variable = binding
        return lambda ctx: _bind_input(ctx, argument, variable)

    def get_function_signature_hook(
        self, fullname: str
    ) -> Callable[[FunctionSigContext], FunctionLike] | None:
        binding = self.function_bindings.get(fullname)
        if binding is None:
            return None
        argument, variable = binding
        return lambda ctx: _bind_input(ctx, argument, variable)


def _bind_input(
    ctx: MethodSigContext | FunctionSigContext, argument: str, variable: str
) -> FunctionLike:
    """The signature with ``variable`` replaced by the input type of the chain or queue
    passed as ``argument``; the default signature when that type is not known."""
    signature = ctx.default_signature
    if argument not in signature.arg_names:
        return signature
    index = signature.arg_names.index(argument)
    if index >= len(ctx.args) or len(ctx.args[index]) != 1:
        return signature
    given = get_proper_type(ctx.api.get_expression_type(ctx.args[index][0]))
    if not isinstance(given, Instance):
        return signature
    queue_info = next((info for info in given.type.mro if info.fullname == _QUEUE_DEF), None)
    if queue_info is None:
        return signature
    input_type = map_instance_to_supertype(given, queue_info).args[0]
    bound = [v for v in signature.variables if v.name == variable]
    if len(bound) != 1:
        return signature
    replaced = _substitute(signature, bound[0].id, input_type)
    return replaced.copy_modified(variables=[v for v in signature.variables if v.id != bound[0].id])


def _substitute(signature: CallableType, variable_id: object, value: object) -> CallableType:
    from mypy.expandtype import expand_type
    from mypy.types import Type, TypeVarId

    assert isinstance(variable_id, TypeVarId)
    assert isinstance(value, Type)
    expanded = get_proper_type(expand_type(signature, {variable_id: value}))
    assert isinstance(expanded, CallableType)
    return expanded


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return QueuertPlugin
