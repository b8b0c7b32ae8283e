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


def _hi_plan(hail, hc, func_name, given, sc):
    """(appliers, refusals): callables that apply the settings, and (setting, advice) pairs."""
    backend = getattr(hc, "_backend", None)
    apply, refuse = [], []
    skip_logging = bool(given.get("skip_logging_configuration"))

    def need(obj, *attrs):
        return obj is not None and all(hasattr(obj, a) for a in attrs)

    for name, value in given.items():
        shown = _hi_format(name, value)
        if name in _HI_HARMLESS or name == "skip_logging_configuration":
            continue
        if name == "sc":
            if value is sc or value is None:
                continue
            refuse.append((shown, "Spark has one context per session; the session's own is `sc`"))
        elif name == "backend":
            if value == "spark":
                continue
            refuse.append((shown, "the session runs Hail on Spark; for another backend connect with "
                                  "`%hail connect --new --no-hail`, then call hl.init yourself"))
        elif func_name == "init_local":
            refuse.append((shown, "hl.init_local starts Hail without Spark: `%hail connect --new --no-hail`, "
                                  "then call hl.init_local yourself"))
        elif name == "default_reference" and hasattr(hail, "default_reference"):
            apply.append((shown, lambda v=value: hail.default_reference(v)))
        elif name == "global_seed" and need(backend, "set_flags") and hasattr(hail, "reset_global_randomness"):
            def set_seed(v=value):
                backend.set_flags(rng_nonce=hex(int(v)))
                hc._user_specified_rng_nonce = True
                hail.reset_global_randomness()  # as right after a fresh hl.init(global_seed=...)
            apply.append((shown, set_seed))
        elif name == "tmp_dir" and need(backend, "remote_tmpdir", "fs"):
            def set_tmp(v=value):
                if not backend.fs.exists(v):
                    backend.fs.mkdir(v)
                backend.remote_tmpdir = v
            apply.append((shown, set_tmp))
        elif name == "local_tmpdir" and need(backend, "local_tmpdir"):
            def set_local_tmp(v=value):
                backend.local_tmpdir = v if "://" in v else "file://" + v
            apply.append((shown + " (Hail's own; Spark's spark.local.dir stays)", set_local_tmp))
        elif name in ("log", "append") and need(backend, "_py4jutils"):
            if skip_logging:
                continue  # Hail leaves logging alone then, also at start
            if name == "append" and "log" in given:
                continue  # applied together with log
            log_file = given.get("log") or getattr(hc, "_log", None)
            append = bool(given.get("append"))

            def set_log(log=log_file, append=append):
                backend._py4jutils.pyConfigureLogging(log, True, append)
                hc._log = log
            apply.append((shown if name == "log" else _hi_format("append", value), set_log))
        elif name == "branching_factor" and need(backend, "set_flags"):
            apply.append((shown, lambda v=value: backend.set_flags(branching_factor=str(int(v)))))
        elif name in ("copy_log_on_error", "copy_spark_log_on_error") and need(backend, "_copy_log_on_error"):
            def set_copy(v=value):
                backend._copy_log_on_error = bool(v)
            apply.append((shown, set_copy))
        elif name == "spark_conf":
            flags = " ".join("--conf %s=%s" % (k, v) for k, v in sorted((value or {}).items()))
            refuse.append((shown, "Spark settings are fixed when the Livy session starts: "
                                  "`%%hail connect --new %s`" % flags))
        elif name in _HI_SPARK_KEYS:
            key, conv = _HI_SPARK_KEYS[name]
            try:
                flag = "`%%hail connect --new --conf %s=%s`" % (key, conv(value))
            except (TypeError, ValueError):
                flag = "`%%hail connect --new --conf %s=...`" % key
            what = "Livy chooses the Spark master" if key == "spark.master" else "Spark settings are fixed"
            refuse.append((shown, "%s when the Livy session starts: %s" % (what, flag)))
        elif name in _HI_CONNECT_FLAGS:
            refuse.append((shown, "the session's size is fixed when it starts: `%%hail connect --new %s %s`"
                                  % (_HI_CONNECT_FLAGS[name], value)))
        else:
            refuse.append((shown, "Hail takes it only when it starts: `%hail connect --new --no-hail`, "
                                  "then call hl.init yourself in a %%hail cell"))
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
