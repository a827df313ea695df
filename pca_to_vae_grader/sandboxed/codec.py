"""How values cross between the grader and the process that runs a submission: JSON, never pickle.

Unpickling runs code, so a value the submission sends back as a pickle could take over the grader.
Values are therefore encoded as JSON with a few tagged forms for the types exercises use: numpy
arrays and scalars (dtype, shape, base64 of the raw bytes), torch tensors (as arrays, decoded back
to tensors), tuples and dicts with string keys. Anything else is refused with an error that names
its type, so a function that returns, say, a generator fails with a readable message.
"""
import base64
import json
import math

import numpy as np

# Numeric dtypes only: booleans, signed and unsigned integers, floats, complex numbers.
_KINDS = "biufc"


class CodecError(ValueError):
    """A value that cannot be sent between the processes, or a message that is not well formed."""


def _encode_array(array):
    array = np.asarray(array)  # keeps a 0-d array 0-d (np.ascontiguousarray would make it shape (1,))
    if array.dtype.kind not in _KINDS:
        raise CodecError(f"an array of dtype {array.dtype} (only numeric arrays can be graded)")
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes(order="C")).decode("ascii"),
    }


def _decode_array(fields):
    if not isinstance(fields, dict) or set(fields) != {"dtype", "shape", "data"}:
        raise CodecError("malformed array")
    dtype = np.dtype(fields["dtype"])
    if dtype.kind not in _KINDS or dtype.hasobject:
        raise CodecError(f"refused dtype {dtype}")
    shape = fields["shape"]
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise CodecError("malformed array shape")
    data = base64.b64decode(fields["data"], validate=True)
    if len(data) != math.prod(shape) * dtype.itemsize:  # exact: no int64 overflow to make a huge shape fit
        raise CodecError("array data does not match its shape")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _is_tensor(value):
    return type(value).__module__.split(".")[0] == "torch" and type(value).__name__ in ("Tensor", "Parameter")


def to_jsonable(value, depth=0):
    """Turn ``value`` into JSON-compatible data, or raise :class:`CodecError` naming what failed."""
    if depth > 20:
        raise CodecError("a structure nested more than 20 levels deep")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        return {"__ndarray__": _encode_array(value)}
    if isinstance(value, np.generic):
        return {"__scalar__": _encode_array(np.asarray(value))}
    if _is_tensor(value):
        return {"__tensor__": _encode_array(value.detach().cpu().numpy()), "requires_grad": bool(value.requires_grad)}
    if isinstance(value, tuple):
        return {"__tuple__": [to_jsonable(v, depth + 1) for v in value]}
    if isinstance(value, list):
        return [to_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise CodecError("a dict with keys that are not strings")
        return {"__dict__": {k: to_jsonable(v, depth + 1) for k, v in value.items()}}
    raise CodecError(f"a value of type {type(value).__module__}.{type(value).__qualname__}")


def from_jsonable(data, depth=0):
    """Inverse of :func:`to_jsonable`; validates every tagged form and never runs code."""
    if depth > 20:
        raise CodecError("a structure nested more than 20 levels deep")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [from_jsonable(v, depth + 1) for v in data]
    if not isinstance(data, dict) or len(data) not in (1, 2):
        raise CodecError("malformed value")
    if set(data) == {"__ndarray__"}:
        return _decode_array(data["__ndarray__"])
    if set(data) == {"__scalar__"}:
        return _decode_array(data["__scalar__"])[()]
    if set(data) == {"__tensor__", "requires_grad"}:
        import torch

        tensor = torch.from_numpy(_decode_array(data["__tensor__"]))
        return tensor.requires_grad_(bool(data["requires_grad"])) if tensor.is_floating_point() else tensor
    if set(data) == {"__tuple__"} and isinstance(data["__tuple__"], list):
        return tuple(from_jsonable(v, depth + 1) for v in data["__tuple__"])
    if set(data) == {"__dict__"} and isinstance(data["__dict__"], dict):
        return {str(k): from_jsonable(v, depth + 1) for k, v in data["__dict__"].items()}
    raise CodecError("malformed value")


def dumps(message):
    """One protocol message (a dict of JSON-compatible data) as a single line of text."""
    return json.dumps(message, allow_nan=True) + "\n"


def loads(line):
    """Parse one protocol line into a dict, or raise :class:`CodecError`."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as err:  # RecursionError: arrays nested thousands deep
        raise CodecError(f"not a protocol message ({err})") from None
    if not isinstance(message, dict):
        raise CodecError("not a protocol message")
    return message
