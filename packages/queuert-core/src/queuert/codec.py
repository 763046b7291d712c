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
        except pydantic.PydanticUserError:
            # typing.TypedDict before Python 3.12 is opaque to pydantic: check its keys only.
            if not _is_typeddict(tp):
                raise
            self._required_keys = frozenset(getattr(tp, "__required_keys__", ()))
            self._adapter = pydantic.TypeAdapter(dict[str, Any])

    def encode(self, value: object) -> str:
        if self._instance_of is not None and not isinstance(value, self._instance_of):
            raise InputValidationError(
                f"{self.what} must be an instance of {_type_name(self.tp)}, got {value!r}"
            )
        if self._msgspec:
            import msgspec

            try:
                text = msgspec.json.encode(value).decode()
                msgspec.json.decode(text, type=self.tp)
            except (TypeError, msgspec.EncodeError, msgspec.ValidationError) as exc:
                raise InputValidationError(f"{self.what} is invalid: {value!r} ({exc})") from exc
            return text
        if self._plain:
            return encode_plain(value, self.what)
        adapter = cast("pydantic.TypeAdapter[Any]", self._adapter)
        if self._required_keys is not None:
            missing = self._required_keys - set(value) if isinstance(value, dict) else None
            if missing is None or missing:
                raise InputValidationError(
                    f"{self.what} does not match {_type_name(self.tp)}: {value!r}"
                )
        try:
            text = adapter.dump_json(value, warnings="error").decode()
        except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
            raise InputValidationError(
                f"{self.what} is not JSON-serialisable as {_type_name(self.tp)}: {value!r} ({exc})"
            ) from exc
        try:
            # What is stored must read back as the declared type, or the handler would fail later.
            adapter.validate_json(text)
        except pydantic.ValidationError as exc:
            raise InputValidationError(
                f"{self.what} does not match {_type_name(self.tp)}: {value!r} "
                f"({exc.errors()[0]['msg']})"
            ) from exc
        return text

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
    ``what`` when it is not JSON-serialisable."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputValidationError(f"{what} is not JSON-serialisable: {value!r} ({exc})") from exc
