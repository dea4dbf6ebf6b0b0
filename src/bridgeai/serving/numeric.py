"""Numeric tensor values of a JSON request: checked against their datatype, large ones as arrays.

JSON numbers with no fractional part (``2``, ``2.0``) are integers, as JSON Schema says; the
integer datatypes also need the value within their range; ``true`` is not a number. A few values
are checked in Python (cheaper than an array); many become one float64 numpy array.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from bridgeai.serving.errors import ProtocolError

INTEGER_DATATYPES: Final = ("INT64", "INT32")
#: Up to this many values, numeric tensors are type-checked in Python instead of via numpy.
_SMALL = 64


def numeric_column(name: str, datatype: str, data: list[Any]) -> list[Any] | np.ndarray:
    """Check one numeric column's values against its datatype; large ones become float64.

    JSON numbers with no fractional part (``2``, ``2.0``) are integers, as JSON Schema says;
    integer datatypes also need the value within their range. ``true`` is not a number.
    """
    integer = datatype in INTEGER_DATATYPES
    if len(data) <= _SMALL:
        # A few values: checking them in Python is cheaper than building an array; the model's
        # encoder converts the list.
        _check_values(name, datatype, data)
        return data
    try:
        array = np.array(data)
    except (ValueError, TypeError, OverflowError):
        array = np.array([], dtype=object)  # ragged or odd input: checked one by one below
    # numpy infers int64 (uint64 past its range) for whole numbers and float64 once any value
    # has a decimal point; text, null, nested lists and mixed huge integers land in another
    # kind. Booleans mixed with numbers do not (numpy reads true as 1): looked for separately.
    kind = array.dtype.kind
    if kind in "iuf" and array.ndim == 1 and len(array) == len(data):
        if not integer:
            if bool not in set(map(type, data)):
                return array.astype(np.float64, copy=False)
        else:
            low, high = map(float, INTEGER_RANGES[datatype])
            if kind == "f":  # a float at INT64's ends may be a rounded out-of-range literal
                low, high = _float_bounds(datatype, low, high)
            whole = kind in "iu" or bool(np.all(np.floor(array) == array))
            in_range = whole and array.min() >= low and array.max() <= high
            if in_range and bool not in set(map(type, data)):
                return array.astype(np.float64, copy=False)
    _check_values(name, datatype, data)  # raises, naming the first bad value
    return np.asarray(data, dtype=np.float64)


#: The values each integer datatype can hold.
INTEGER_RANGES: Final = {"INT64": (-(2**63), 2**63 - 1), "INT32": (-(2**31), 2**31 - 1)}


def _float_bounds(datatype: str, low: float, high: float) -> tuple[float, float]:
    """INT64's range for a JSON number parsed as a float: one step inside each end, because
    an integer literal past the range (``-9223372036854775809``) is read as a float that
    rounds onto the end itself."""
    if datatype == "INT64":
        return np.nextafter(float(low), 0.0), np.nextafter(float(high), 0.0)
    return low, high


def _check_values(name: str, datatype: str, data: list[Any]) -> None:
    bounds = INTEGER_RANGES.get(datatype)
    for value in data:
        kind = type(value)
        if kind is not int and kind is not float:
            wanted = "whole numbers" if bounds else "numbers"
            raise ProtocolError(f"input {name!r}: {datatype} data must be {wanted}; got {value!r}")
        if bounds is None:
            continue
        low: float
        high: float
        if kind is int:
            low, high = bounds  # exact: int against int
        else:
            if not value.is_integer():
                raise ProtocolError(
                    f"input {name!r}: {datatype} data must be whole numbers; got {value!r}"
                )
            low, high = _float_bounds(datatype, *bounds)
        if not low <= value <= high:
            raise ProtocolError(
                f"input {name!r}: {value!r} is outside the {datatype} range "
                f"[{bounds[0]}, {bounds[1]}]"
            )
