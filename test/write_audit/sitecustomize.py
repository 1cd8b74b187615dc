"""Imported at start-up by every Python process that has this folder on PYTHONPATH (the
distributed training test puts it there for torchrun's workers). When VLA_AUDIT_ROOT is set,
it prints one line `WRITE-AUDIT {"rank", "event", "path"}` to stdout for every file-system write
(open for writing, mkdir, rename/replace, remove, rmtree) under that folder, so the test can tell
which rank wrote what. Writes from outside Python (safetensors' Rust code) are not seen; the
trainer creates their folder with mkdir first, which is.
"""
import json
import os
import sys

_ROOT = os.environ.get('VLA_AUDIT_ROOT', '')
_RANK = os.environ.get('RANK', '')
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {'os.mkdir', 'os.remove', 'os.rmdir', 'os.rename', 'shutil.rmtree', 'os.truncate',
                'shutil.copyfile', 'shutil.move'}


def _under_root(path) -> bool:
    try:
        path = os.fsdecode(os.fspath(path))
    except TypeError:
        return False
    return os.path.abspath(path).startswith(_ROOT)


def _is_write(event: str, args: tuple) -> bool:
    if event == 'open':
        _, mode, flags = args
        return any(c in mode for c in 'wax+') if isinstance(mode, str) else bool(flags & _WRITE_FLAGS)
    return event in _PATH_EVENTS


def _hook(event: str, args: tuple) -> None:
    if (event == 'open' or event in _PATH_EVENTS) and args and _under_root(args[0]) \
            and _is_write(event, args):
        sys.__stdout__.write('WRITE-AUDIT ' + json.dumps({'rank': _RANK, 'event': event,
                                                          'path': os.fsdecode(args[0])}) + '\n')
        sys.__stdout__.flush()


if _ROOT and _RANK:
    _ROOT = os.path.abspath(_ROOT)
    sys.addaudithook(_hook)
