"""pprof's profile.proto (github.com/google/pprof, proto/profile.proto) read
with the protobuf library: the schema is built as a descriptor here instead
of being compiled by protoc, so no generated module is kept in the tree.
Only the messages and fields goalloc's writer (csrc/pprof.c) and the
standard tools use are declared; unknown fields are kept by protobuf."""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_T = descriptor_pb2.FieldDescriptorProto
_U64, _I64, _STR, _MSG, _BOOL = _T.TYPE_UINT64, _T.TYPE_INT64, _T.TYPE_STRING, _T.TYPE_MESSAGE, _T.TYPE_BOOL
_REP, _OPT = _T.LABEL_REPEATED, _T.LABEL_OPTIONAL

#: message -> (name, number, type, repeated, message type)
_SCHEMA = {
    "Profile": [
        ("sample_type", 1, _MSG, True, "ValueType"), ("sample", 2, _MSG, True, "Sample"),
        ("mapping", 3, _MSG, True, "Mapping"), ("location", 4, _MSG, True, "Location"),
        ("function", 5, _MSG, True, "Function"), ("string_table", 6, _STR, True, None),
        ("drop_frames", 7, _I64, False, None), ("keep_frames", 8, _I64, False, None),
        ("time_nanos", 9, _I64, False, None), ("duration_nanos", 10, _I64, False, None),
        ("period_type", 11, _MSG, False, "ValueType"), ("period", 12, _I64, False, None),
        ("comment", 13, _I64, True, None), ("default_sample_type", 14, _I64, False, None),
    ],
    "ValueType": [("type", 1, _I64, False, None), ("unit", 2, _I64, False, None)],
    "Sample": [
        ("location_id", 1, _U64, True, None), ("value", 2, _I64, True, None),
        ("label", 3, _MSG, True, "Label"),
    ],
    "Label": [
        ("key", 1, _I64, False, None), ("str", 2, _I64, False, None), ("num", 3, _I64, False, None),
        ("num_unit", 4, _I64, False, None),
    ],
    "Mapping": [
        ("id", 1, _U64, False, None), ("memory_start", 2, _U64, False, None),
        ("memory_limit", 3, _U64, False, None), ("file_offset", 4, _U64, False, None),
        ("filename", 5, _I64, False, None), ("build_id", 6, _I64, False, None),
        ("has_functions", 7, _BOOL, False, None), ("has_filenames", 8, _BOOL, False, None),
        ("has_line_numbers", 9, _BOOL, False, None), ("has_inline_frames", 10, _BOOL, False, None),
    ],
    "Location": [
        ("id", 1, _U64, False, None), ("mapping_id", 2, _U64, False, None),
        ("address", 3, _U64, False, None), ("line", 4, _MSG, True, "Line"),
        ("is_folded", 5, _BOOL, False, None),
    ],
    "Line": [("function_id", 1, _U64, False, None), ("line", 2, _I64, False, None)],
    "Function": [
        ("id", 1, _U64, False, None), ("name", 2, _I64, False, None),
        ("system_name", 3, _I64, False, None), ("filename", 4, _I64, False, None),
        ("start_line", 5, _I64, False, None),
    ],
}
_PACKAGE = "perftools.profiles"


@lru_cache(maxsize=1)
def profile_class() -> Any:
    """The generated message class of perftools.profiles.Profile."""
    f = descriptor_pb2.FileDescriptorProto(name="goalloc_profile.proto", package=_PACKAGE, syntax="proto3")
    for name, fields in _SCHEMA.items():
        m = f.message_type.add(name=name)
        for fname, num, typ, rep, sub in fields:
            fd = m.field.add(name=fname, number=num, type=typ, label=_REP if rep else _OPT)
            if sub:
                fd.type_name = f".{_PACKAGE}.{sub}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Profile"))


def load(path: Union[str, Path]) -> Any:
    """The Profile in *path* (gzipped or not)."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    prof = profile_class()()
    prof.ParseFromString(data)
    return prof
