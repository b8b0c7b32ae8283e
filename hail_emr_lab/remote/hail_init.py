# Part of the _hail_emr_lab namespace on the cluster (see hail_emr_lab/remote/__init__.py).
#
# ``%hail connect`` starts Hail with ``hl.init(sc)``. Notebooks written for sparkmagic or a
# local Hail start with their own ``hl.init(...)``, which on an initialised Hail ends in a bare
# AssertionError (Hail's HailContext asserts it is the only one). guard_hail_init() replaces
# ``hl.init`` / ``hl.init_spark`` / ``hl.init_local`` in the session with a guard that:
#   * with no settings (or the session's own ``sc``) does nothing and says so in one line;
#   * applies the settings Hail can change while running (default_reference, global_seed,
#     tmp_dir, local_tmpdir, log/append, branching_factor, copy_log_on_error);
#   * refuses, before changing anything, when a setting can only be given when Spark or Hail
#     starts, naming each one and how to give it (a new session with --conf, or a session
#     without Hail and the user's own hl.init).
# After ``hl.stop()`` the guard steps aside and Hail's own function runs.
# Python 3.7+, standard library only (Hail is imported by the caller).

import inspect as _hi_inspect
import sys as _hi_sys

#: hl.init arguments that are Spark settings: (Spark conf key, how to turn the value into it).
_HI_SPARK_KEYS = {
    "app_name": ("spark.app.name", str),
    "master": ("spark.master", str),
    "local": ("spark.master", str),
    "show_progress": ("spark.ui.showConsoleProgress", lambda v: str(bool(v)).lower()),
    "min_block_size": ("spark.hadoop.mapreduce.input.fileinputformat.split.minsize", lambda v: str(int(v) << 20)),
}
#: hl.init arguments for Livy session sizing: the %hail connect flag that sets them.
_HI_CONNECT_FLAGS = {
    "driver_cores": "--driver-cores",
    "driver_memory": "--driver-memory",
    "worker_cores": "--executor-cores",
    "worker_memory": "--executor-memory",
}
#: Arguments that change nothing in a running Hail (how it talks, not what it does).
_HI_HARMLESS = ("quiet", "idempotent")


class HailAlreadyRunning(RuntimeError):
    """hl.init(...) asked for settings a running Hail cannot take; nothing was changed."""


def _hi_running(hail):
    try:
        from hail.utils.java import Env
    except ImportError:
        return None
    return Env._hc


def _hi_same(value, default):
    try:
        return value is default or bool(value == default)
    except Exception:  # e.g. comparing arrays: treat as a change
        return False


def _hi_format(name, value):
    return "%s=%r" % (name, value)


def _hi_has(obj, *attrs):
    return obj is not None and all(hasattr(obj, a) for a in attrs)


#: An applier's answer for a setting that needs nothing done (e.g. append, applied with log).
_HI_SKIP = object()


def _hi_default_reference(hail, hc, backend, value, given):
    if hasattr(hail, "default_reference"):
        return lambda: hail.default_reference(value)
    return None


def _hi_global_seed(hail, hc, backend, value, given):
    if not (_hi_has(backend, "set_flags") and hasattr(hail, "reset_global_randomness")):
        return None

    def set_seed():
        backend.set_flags(rng_nonce=hex(int(value)))
        hc._user_specified_rng_nonce = True
        hail.reset_global_randomness()  # as right after a fresh hl.init(global_seed=...)
    return set_seed


def _hi_tmp_dir(hail, hc, backend, value, given):
    if not _hi_has(backend, "remote_tmpdir", "fs"):
        return None

    def set_tmp():
        if not backend.fs.exists(value):
            backend.fs.mkdir(value)
        backend.remote_tmpdir = value
    return set_tmp


def _hi_local_tmpdir(hail, hc, backend, value, given):
    if not _hi_has(backend, "local_tmpdir"):
        return None

    def set_local_tmp():
        backend.local_tmpdir = value if "://" in value else "file://" + value
    return set_local_tmp


def _hi_log(hail, hc, backend, value, given):
    if not _hi_has(backend, "_py4jutils"):
        return None
    if given.get("skip_logging_configuration"):
        return _HI_SKIP  # Hail leaves logging alone then, also at start
    log_file = given.get("log") or getattr(hc, "_log", None)
    append = bool(given.get("append"))

    def set_log():
        backend._py4jutils.pyConfigureLogging(log_file, True, append)
        hc._log = log_file
    return set_log


def _hi_append(hail, hc, backend, value, given):
    if "log" in given and _hi_has(backend, "_py4jutils"):
        return _HI_SKIP  # applied together with log
    return _hi_log(hail, hc, backend, value, given)


def _hi_branching_factor(hail, hc, backend, value, given):
    if _hi_has(backend, "set_flags"):
        return lambda: backend.set_flags(branching_factor=str(int(value)))
    return None


def _hi_copy_log(hail, hc, backend, value, given):
    if not _hi_has(backend, "_copy_log_on_error"):
        return None

    def set_copy():
        backend._copy_log_on_error = bool(value)
    return set_copy


#: Settings a running Hail can take: name -> applier(hail, hc, backend, value, given) answering
#: a callable that applies it, _HI_SKIP, or None when this Hail cannot (then it is refused).
_HI_APPLIERS = {
    "default_reference": _hi_default_reference,
    "global_seed": _hi_global_seed,
    "tmp_dir": _hi_tmp_dir,
    "local_tmpdir": _hi_local_tmpdir,
    "log": _hi_log,
    "append": _hi_append,
    "branching_factor": _hi_branching_factor,
    "copy_log_on_error": _hi_copy_log,
    "copy_spark_log_on_error": _hi_copy_log,
}
_HI_SHOWN_NOTE = {"local_tmpdir": " (Hail's own; Spark's spark.local.dir stays)"}


def _hi_start_only(name, value):
    """The advice for a setting fixed when the Livy session starts, or None."""
    if name == "spark_conf":
        flags = " ".join("--conf %s=%s" % (k, v) for k, v in sorted((value or {}).items()))
        return "Spark settings are fixed when the Livy session starts: `%%hail connect --new %s`" % flags
    if name in _HI_SPARK_KEYS:
        key, conv = _HI_SPARK_KEYS[name]
        try:
            flag = "`%%hail connect --new --conf %s=%s`" % (key, conv(value))
        except (TypeError, ValueError):
            flag = "`%%hail connect --new --conf %s=...`" % key
        what = "Livy chooses the Spark master" if key == "spark.master" else "Spark settings are fixed"
        return "%s when the Livy session starts: %s" % (what, flag)
    if name in _HI_CONNECT_FLAGS:
        return "the session's size is fixed when it starts: `%%hail connect --new %s %s`" % (
            _HI_CONNECT_FLAGS[name], value)
    return None


def _hi_refusal(name, value, func_name, sc):
    """Why a setting cannot be given to this session at all, or None."""
    if name == "sc":
        return None if value is sc or value is None else "Spark has one context per session; the session's own is `sc`"
    if name == "backend":
        return None if value == "spark" else (
            "the session runs Hail on Spark; for another backend connect with "
            "`%hail connect --new --no-hail`, then call hl.init yourself")
    if func_name == "init_local":
        return ("hl.init_local starts Hail without Spark: `%hail connect --new --no-hail`, "
                "then call hl.init_local yourself")
    return _hi_start_only(name, value)


def _hi_plan(hail, hc, func_name, given, sc):
    """(appliers, refusals): (shown setting, callable that applies it), and (shown setting, advice)."""
    backend = getattr(hc, "_backend", None)
    apply, refuse = [], []
    for name, value in given.items():
        if name in _HI_HARMLESS or name == "skip_logging_configuration":
            continue
        shown = _hi_format(name, value)
        advice = _hi_refusal(name, value, func_name, sc)
        if name in ("sc", "backend") and advice is None:
            continue  # the session's own context, Hail's own backend
        if advice is not None:
            refuse.append((shown, advice))
            continue
        applier = _HI_APPLIERS.get(name)
        action = applier(hail, hc, backend, value, given) if applier is not None else None
        if action is _HI_SKIP:
            continue
        if action is None:
            refuse.append((shown, "Hail takes it only when it starts: `%hail connect --new --no-hail`, "
                                  "then call hl.init yourself in a %%hail cell"))
            continue
        apply.append((shown + _HI_SHOWN_NOTE.get(name, ""), action))
    return apply, refuse


def guard_hail_init(hail, sc):
    """Replace hail.init, hail.init_spark and hail.init_local with guards (see the top of this file)."""
    for func_name in ("init", "init_spark", "init_local"):
        original = getattr(hail, func_name, None)
        original = getattr(original, "_hel_original", original)  # setup may run twice in one session
        if original is None:
            continue
        guard = _hi_make_guard(hail, sc, func_name, original)
        setattr(hail, func_name, guard)
        context = _hi_sys.modules.get("hail.context")
        there = getattr(context, func_name, None)
        if there is not None and getattr(there, "_hel_original", there) is original:
            setattr(context, func_name, guard)  # hail.context.init is the same function under another name


def _hi_make_guard(hail, sc, func_name, original):
    try:
        signature = _hi_inspect.signature(original)
    except (TypeError, ValueError):
        signature = None

    def guarded(*args, **kwargs):
        hc = _hi_running(hail)
        if hc is None or signature is None:
            return original(*args, **kwargs)  # Hail is not running (hl.stop()): Hail's own init
        bound = signature.bind(*args, **kwargs)  # a wrong argument fails as it would in Hail
        given = {}
        for name, value in bound.arguments.items():
            param = signature.parameters[name]
            if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if not _hi_same(value, param.default):
                given[name] = value
        apply, refuse = _hi_plan(hail, hc, func_name, given, sc)
        call = "hl.%s(%s)" % (func_name, ", ".join(_hi_format(k, v) for k, v in given.items()))
        if refuse:
            lines = ["%s: Hail is already running in this session (%%hail connect started it with hl.init(sc)), "
                     "and these settings can only be given when it starts, so nothing was changed:" % call]
            lines += ["  %s: %s" % pair for pair in refuse]
            if apply:
                lines.append("These could be applied to the running Hail (call hl.init again without the above): "
                             + ", ".join(shown for shown, _ in apply))
            raise HailAlreadyRunning("\n".join(lines))
        for _shown, action in apply:
            action()
        if given.get("quiet"):
            return None
        if apply:
            print("%s: Hail was already running in this session; applied %s."
                  % (call, ", ".join(shown for shown, _ in apply)))
        else:
            print("hl.%s: Hail is already running in this session (%%hail connect started it); nothing to do."
                  % func_name)
        return None

    guarded._hel_original = original
    guarded.__name__ = getattr(original, "__name__", func_name)
    guarded.__doc__ = getattr(original, "__doc__", None)
    guarded.__wrapped__ = original
    return guarded
