"""omnirt for Python: a thin ctypes layer over the C API (include/omnirt.h).

    import omnirt
    model = omnirt.Model("models/gemma-3-270m-q4_k_m.gguf")
    session = omnirt.Session(omnirt.Engine(), model, temperature=0.0)
    session.append_chat("user", "Why is the sky blue?")
    print(session.generate(96, on_piece=lambda tok, text: print(text, end="", flush=True)))

The library is found through $OMNIRT_LIB, else build/lib/libomnirt.so of this checkout.
Every failing call raises OmniError(status, message). Handles are released when the Python
objects are collected (or explicitly with close()).
"""
import ctypes
import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent.parent
_lib_path = os.environ.get("OMNIRT_LIB", str(_ROOT / "build" / "lib" / "libomnirt.so"))
_lib = ctypes.CDLL(_lib_path)

OK, ERR_INVALID_ARGUMENT, ERR_NOT_FOUND, ERR_IO, ERR_CORRUPT_FILE, ERR_UNSUPPORTED = 0, 1, 2, 3, 4, 5
ERR_OUT_OF_RANGE, ERR_OUT_OF_MEMORY, ERR_WRONG_STATE, ERR_INTERNAL, ERR_CANCELLED = 6, 7, 8, 9, 10
TOKENIZE_ADD_BOS, TOKENIZE_PARSE_SPECIAL, DETOKENIZE_RENDER_SPECIAL = 1, 2, 1
KV_F16, KV_F32 = 0, 1
STOP_REASONS = {0: "none", 1: "end_of_generation", 2: "max_tokens", 3: "callback",
                4: "requested", 5: "context_full"}


class OmniError(RuntimeError):
    def __init__(self, status, message):
        super().__init__(f"{_lib.omni_status_name(status).decode()}: {message}")
        self.status = status


class _EngineParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("device", ctypes.c_int32),
                ("n_threads", ctypes.c_int32)]


class _SessionParams(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("n_ctx", ctypes.c_int32),
                ("n_batch", ctypes.c_int32), ("kv_type", ctypes.c_int32),
                ("n_threads", ctypes.c_int32), ("temperature", ctypes.c_float),
                ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float), ("min_p", ctypes.c_float),
                ("repeat_penalty", ctypes.c_float), ("repeat_last_n", ctypes.c_int32),
                ("seed", ctypes.c_uint64)]


_TokenCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.POINTER(ctypes.c_char),
                                  ctypes.c_size_t, ctypes.c_void_p)
_p = ctypes.c_void_p
_sigs = {
    "omni_last_error": (ctypes.c_char_p, []),
    "omni_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "omni_version": (ctypes.c_char_p, []),
    "omni_backends": (ctypes.c_char_p, []),
    "omni_model_load": (ctypes.c_int, [ctypes.c_char_p, _p, ctypes.POINTER(_p)]),
    "omni_model_destroy": (None, [_p]),
    "omni_model_arch": (ctypes.c_char_p, [_p]),
    "omni_model_n_vocab": (ctypes.c_int32, [_p]),
    "omni_model_is_synthetic": (ctypes.c_int, [_p]),
    "omni_tokenize": (ctypes.c_int, [_p, ctypes.c_char_p, ctypes.c_uint32,
                                     ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
                                     ctypes.POINTER(ctypes.c_size_t)]),
    "omni_detokenize": (ctypes.c_int, [_p, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
                                       ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t,
                                       ctypes.POINTER(ctypes.c_size_t)]),
    "omni_engine_default_params": (_EngineParams, []),
    "omni_engine_create": (ctypes.c_int, [ctypes.POINTER(_EngineParams), ctypes.POINTER(_p)]),
    "omni_engine_destroy": (None, [_p]),
    "omni_session_default_params": (_SessionParams, []),
    "omni_session_create": (ctypes.c_int, [_p, _p, ctypes.POINTER(_SessionParams),
                                           ctypes.POINTER(_p)]),
    "omni_session_destroy": (None, [_p]),
    "omni_session_reset": (ctypes.c_int, [_p]),
    "omni_session_append_text": (ctypes.c_int, [_p, ctypes.c_char_p, ctypes.c_uint32]),
    "omni_session_append_tokens": (ctypes.c_int, [_p, ctypes.POINTER(ctypes.c_int32),
                                                  ctypes.c_size_t]),
    "omni_session_append_chat": (ctypes.c_int, [_p, ctypes.c_char_p, ctypes.c_char_p]),
    "omni_session_generate": (ctypes.c_int, [_p, ctypes.c_int32, _TokenCallback, _p]),
    "omni_session_stop": (None, [_p]),
    "omni_session_stop_reason": (ctypes.c_int, [_p]),
    "omni_session_logits": (ctypes.c_int, [_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
                                           ctypes.POINTER(ctypes.c_int32)]),
    "omni_session_n_tokens": (ctypes.c_int32, [_p]),
}
for _name, (_res, _args) in _sigs.items():
    _fn = getattr(_lib, _name)
    _fn.restype, _fn.argtypes = _res, _args


def _check(status):
    if status != OK:
        raise OmniError(status, _lib.omni_last_error().decode("utf-8", "replace"))


def version():
    return _lib.omni_version().decode()


class Model:
    def __init__(self, path):
        self._h = _p()
        _check(_lib.omni_model_load(os.fsencode(path), None, ctypes.byref(self._h)))

    def close(self):
        if self._h:
            _lib.omni_model_destroy(self._h)
            self._h = _p()

    __del__ = close

    @property
    def arch(self):
        return _lib.omni_model_arch(self._h).decode()

    @property
    def n_vocab(self):
        return _lib.omni_model_n_vocab(self._h)

    @property
    def is_synthetic(self):
        return bool(_lib.omni_model_is_synthetic(self._h))

    def tokenize(self, text, add_bos=True, special=False):
        flags = (TOKENIZE_ADD_BOS if add_bos else 0) | (TOKENIZE_PARSE_SPECIAL if special else 0)
        data, n = text.encode("utf-8"), ctypes.c_size_t(0)
        status = _lib.omni_tokenize(self._h, data, flags, None, 0, ctypes.byref(n))
        if status not in (OK, ERR_OUT_OF_RANGE):
            _check(status)
        ids = (ctypes.c_int32 * max(n.value, 1))()
        _check(_lib.omni_tokenize(self._h, data, flags, ids, n.value, ctypes.byref(n)))
        return list(ids[: n.value])

    def detokenize(self, ids, render_special=False):
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        flags = DETOKENIZE_RENDER_SPECIAL if render_special else 0
        n = ctypes.c_size_t(0)
        status = _lib.omni_detokenize(self._h, arr, len(ids), flags, None, 0, ctypes.byref(n))
        if status not in (OK, ERR_OUT_OF_RANGE):
            _check(status)
        buf = ctypes.create_string_buffer(n.value + 1)
        _check(_lib.omni_detokenize(self._h, arr, len(ids), flags, buf, n.value + 1,
                                    ctypes.byref(n)))
        return buf.raw[: n.value].decode("utf-8", "replace")


class Engine:
    def __init__(self, n_threads=0):
        p = _lib.omni_engine_default_params()
        p.n_threads = n_threads
        self._h = _p()
        _check(_lib.omni_engine_create(ctypes.byref(p), ctypes.byref(self._h)))

    def close(self):
        if self._h:
            _lib.omni_engine_destroy(self._h)
            self._h = _p()

    __del__ = close


class Session:
    """One conversation. Keyword arguments are omni_session_params fields (n_ctx, kv_type,
    temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed, ...)."""

    def __init__(self, engine, model, **params):
        p = _lib.omni_session_default_params()
        for key, value in params.items():
            if key not in dict(_SessionParams._fields_) or key == "struct_size":
                raise TypeError(f"unknown session parameter '{key}'")
            setattr(p, key, value)
        self._model = model  # the C side keeps the weights alive; this keeps tokenize handy
        self._h = _p()
        _check(_lib.omni_session_create(engine._h, model._h, ctypes.byref(p), ctypes.byref(self._h)))

    def close(self):
        if self._h:
            _lib.omni_session_destroy(self._h)
            self._h = _p()

    __del__ = close

    def reset(self):
        _check(_lib.omni_session_reset(self._h))

    def append_text(self, text, add_bos=True, special=False):
        flags = (TOKENIZE_ADD_BOS if add_bos else 0) | (TOKENIZE_PARSE_SPECIAL if special else 0)
        _check(_lib.omni_session_append_text(self._h, text.encode("utf-8"), flags))

    def append_tokens(self, ids):
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        _check(_lib.omni_session_append_tokens(self._h, arr, len(ids)))

    def append_chat(self, role, content):
        _check(_lib.omni_session_append_chat(self._h, role.encode(), content.encode("utf-8")))

    def generate(self, max_tokens, on_piece=None):
        """Generates up to max_tokens; on_piece(token, text) sees each token as it comes and may
        return True to stop. Returns (text, token ids)."""
        pieces, tokens, errors = [], [], []

        def trampoline(token, piece, length, _user):
            text = ctypes.string_at(piece, length).decode("utf-8", "replace")
            pieces.append(text)
            if token >= 0:
                tokens.append(token)
            try:
                return 1 if (on_piece and on_piece(token, text)) else 0
            except BaseException as e:  # never unwind through C: stop and re-raise after
                errors.append(e)
                return 1

        cb = _TokenCallback(trampoline)
        status = _lib.omni_session_generate(self._h, max_tokens, cb, None)
        if errors:
            raise errors[0]
        _check(status)
        return "".join(pieces), tokens

    def stop(self):
        _lib.omni_session_stop(self._h)

    @property
    def stop_reason(self):
        return STOP_REASONS.get(_lib.omni_session_stop_reason(self._h), "unknown")

    @property
    def n_tokens(self):
        return _lib.omni_session_n_tokens(self._h)

    def logits(self):
        ptr, n = ctypes.POINTER(ctypes.c_float)(), ctypes.c_int32(0)
        _check(_lib.omni_session_logits(self._h, ctypes.byref(ptr), ctypes.byref(n)))
        return ptr[: n.value]
