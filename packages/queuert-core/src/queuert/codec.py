"""Turning typed inputs and outputs into JSON text and back.

Supported types: dataclasses, TypedDicts, pydantic models, msgspec structs
(when msgspec is installed), and anything else pydantic's ``TypeAdapter``
understands (``dict``, ``list``, ``int``...).
"""

from __future__ import annotations

import json
from typing import Any, Generic, TypeVar, cast

import pydantic
import pydantic_core

from queuert.errors import InputValidationError
from queuert.validation import check_payload, clip, show

T = TypeVar("T")


def _is_msgspec_struct(tp: object) -> bool:
    try:
        import msgspec
    except ImportError:  # msgspec is an optional extra
        return False
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


class Codec(Generic[T]):
    """Encodes values of one declared type to JSON text and decodes them back.

    ``encode`` raises :class:`~queuert.errors.InputValidationError` naming
    ``what`` (for example ``"input of queue 'resize'"``) when the value does
    not match the type or is not JSON-serialisable.
    """

    __slots__ = ("_adapter", "_instance_of", "_msgspec", "_plain", "_required_keys", "tp", "what")

    def __init__(self, tp: type[T] | Any, what: str) -> None:
        self.tp = tp
        self.what = what
        self._msgspec = _is_msgspec_struct(tp)
        self._required_keys: frozenset[str] | None = None
        self._adapter: pydantic.TypeAdapter[Any] | None = None
        # Class types (dataclasses, models, structs) must be given as instances: a dict
        # that happens to fit is a bug a type checker would have caught.
        self._instance_of: type | None = (
            tp
            if isinstance(tp, type) and tp is not Any and not _is_typeddict(tp) and tp not in _PLAIN
            else None
        )
        # Untyped payloads go through the standard library, which refuses NaN,
        # infinities and objects instead of quietly turning them into strings or null.
        self._plain = tp is Any or tp in (dict, list)
        if self._msgspec:
            return
        try:
            self._adapter = pydantic.TypeAdapter(tp)
        except Exception as exc:
            # typing.TypedDict before Python 3.12 is opaque to pydantic: check its keys only.
            # Anything else pydantic cannot build a schema for (or fails on) is refused.
            if not (isinstance(exc, pydantic.PydanticUserError) and _is_typeddict(tp)):
                raise InputValidationError(
                    f"{what} has a type that cannot be stored as JSON: {show(tp)} "
                    f"({clip(str(exc))})"
                ) from exc
            self._required_keys = frozenset(getattr(tp, "__required_keys__", ()))
            self._adapter = pydantic.TypeAdapter(dict[str, Any])

    def encode(self, value: object) -> str:
        """JSON text of ``value``, checked to read back as the declared type. Raises
        :class:`~queuert.errors.InputValidationError` for a value of the wrong type,
        one that is not JSON-serialisable, holds NaN or an infinity, an unpaired
        surrogate, keys that are not strings (untyped payloads) or nests too deep."""
        if self._instance_of is not None and not isinstance(value, self._instance_of):
            raise InputValidationError(
                f"{self.what} must be an instance of {_type_name(self.tp)}, got {show(value)}"
            )
        if self._msgspec:
            return self._encode_msgspec(value)
        if self._plain:
            return encode_plain(value, self.what)
        adapter = cast("pydantic.TypeAdapter[Any]", self._adapter)
        if self._required_keys is not None:
            missing = self._required_keys - set(value) if isinstance(value, dict) else None
            if missing is None or missing:
                raise InputValidationError(
                    f"{self.what} does not match {_type_name(self.tp)}: {show(value)}"
                )
        try:
            text = adapter.dump_json(value, warnings="error").decode()
            if "null" in text:
                # pydantic writes NaN and infinities as null: look for them in the value.
                check_payload(
                    adapter.dump_python(value, warnings="error"), self.what, string_keys=False
                )
        except InputValidationError:
            raise
        except _PYDANTIC_ENCODE_ERRORS as exc:
            raise InputValidationError(
                f"{self.what} is not JSON-serialisable as {_type_name(self.tp)}: "
                f"{show(value)} ({clip(str(exc))})"
            ) from exc
        self._check_reads_back(text, value)
        return text

    def _encode_msgspec(self, value: object) -> str:
        import msgspec

        errors: tuple[type[Exception], ...] = (msgspec.EncodeError, *_ENCODE_ERRORS)
        try:
            text = msgspec.json.encode(value).decode()
            if "null" in text:
                # msgspec writes NaN and infinities as null: look for them in the value.
                check_payload(msgspec.to_builtins(value), self.what, string_keys=False)
        except InputValidationError:
            raise
        except errors as exc:
            raise InputValidationError(
                f"{self.what} is invalid: {show(value)} ({clip(str(exc))})"
            ) from exc
        self._check_reads_back(text, value)
        return text

    def _check_reads_back(self, text: str, value: object) -> None:
        # What is stored must read back as the declared type, or the handler (or
        # wait_for_chain) would fail later on a value accepted now.
        try:
            self.decode(text)
        except Exception as exc:
            raise InputValidationError(
                f"{self.what} does not read back as {_type_name(self.tp)}: {show(value)} "
                f"({_first_error(exc)})"
            ) from exc

    def decode(self, text: str) -> T:
        if self._msgspec:
            import msgspec

            return cast(T, msgspec.json.decode(text, type=self.tp))
        adapter = cast("pydantic.TypeAdapter[Any]", self._adapter)
        return cast(T, adapter.validate_json(text))


_PLAIN: tuple[type, ...] = (dict, list, str, int, float, bool, type(None), tuple)


def _is_typeddict(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _type_name(tp: object) -> str:
    return getattr(tp, "__name__", repr(tp))


def encode_plain(value: object, what: str) -> str:
    """JSON text for a value of no declared type; raises InputValidationError naming
    ``what`` when it is not JSON-serialisable, holds NaN or an infinity, an unpaired
    surrogate or a key that is not a string, nests too deep, or does not read back."""
    check_payload(value, what, string_keys=True)
    try:
        text = json.dumps(value, allow_nan=False)
    except _ENCODE_ERRORS as exc:
        raise InputValidationError(
            f"{what} is not JSON-serialisable: {show(value)} ({clip(str(exc))})"
        ) from exc
    try:
        _ANY.validate_json(text)
    except _PYDANTIC_ENCODE_ERRORS as exc:
        raise InputValidationError(
            f"{what} does not read back: {show(value)} ({_first_error(exc)})"
        ) from exc
    return text


_ENCODE_ERRORS: tuple[type[Exception], ...] = (
    TypeError,
    ValueError,
    OverflowError,
    RecursionError,
    UnicodeError,
)

_PYDANTIC_ENCODE_ERRORS: tuple[type[Exception], ...] = (
    pydantic_core.PydanticSerializationError,
    pydantic.ValidationError,
    *_ENCODE_ERRORS,
)

_ANY: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Any)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        errors = exc.errors(include_input=False)
        if errors:
            return clip(str(errors[0]["msg"]))
    return clip(f"{type(exc).__name__}: {exc}")
