"""Plot directory helpers that run on the cluster, inside the Livy session.

Installed by ``hail_emr_lab.remote.bootstrap_code`` as the module object
``_hail_emr_lab_plots``, so only ``PLOTS_DIR`` and ``save_plot`` reach the user's globals.
Must run on Python 3.7+ with the standard library only (bokeh, matplotlib and pybase64 are used
when present).

There is no browser on the cluster, so :func:`route_shows` sends the usual ways of showing a
figure to the plot directory instead: bokeh's ``show`` (and so Hail's ``hl.plot.show``) and
matplotlib's ``plt.show()`` save each figure as ``show-<date>-<time>-<n>[-<title>]``, and
:func:`scan` (after each cell) saves the matplotlib figures a cell left open, then closes
them, as Jupyter's inline backend does.

Everything returns plain JSON-able dicts; the notebook side treats every value as
untrusted (names are validated again there).
"""

import base64
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
import time
import zlib

try:  # SIMD base64 (~20x the standard library's) where the driver has it, e.g. the embedded server;
    # straight to text: each copy of a 2.8 MB chunk costs milliseconds
    from pybase64 import b64encode_as_string as _b64text
except ImportError:
    def _b64text(data):
        return base64.b64encode(data).decode("ascii")
#: File types the notebook shows; others are listed but not pulled automatically.
PLOT_SUFFIXES = (".html", ".htm", ".png", ".svg", ".jpg", ".jpeg", ".gif", ".pdf")
MAX_DEPTH = 4  # subdirectories of PLOTS_DIR looked into
MAX_ENTRIES = 5000  # a listing never grows without bound
BOKEHJS_BUNDLES = ("bokeh", "bokeh-widgets", "bokeh-tables", "bokeh-gl", "bokeh-mathjax", "bokeh-api")

PLOTS_DIR = "/plots"
_HASHES = {}  # (relative name, size, mtime_ns) -> sha256: a file is hashed once per version
_SEEN = {}  # relative name -> (size, mtime_ns) at the last scan (or at setup)
# relative name -> number of its latest save_plot: orders saves that share one mtime tick
_ORDER = {}
_COUNTERS = {"save": 0, "show": 0}
_SAVED_FIGURES = {}  # id(matplotlib figure) -> figure, saved by save_plot since the last scan


def init(default_dir):
    """Set ``PLOTS_DIR`` (the embedded server's workers set HAIL_EMR_LAB_PLOTS_DIR) and snapshot it."""
    global PLOTS_DIR
    PLOTS_DIR = os.environ.get("HAIL_EMR_LAB_PLOTS_DIR") or default_dir
    _SEEN.clear()
    for entry in _walk(PLOTS_DIR)[0]:
        _SEEN[entry["name"]] = (entry["size"], entry["mtime_ns"])
    return PLOTS_DIR


def _walk(root):
    """(files, refused, error): regular files under ``root`` with size and mtime, no hashing."""
    files, refused = [], []
    try:
        top = os.stat(root)
    except OSError as exc:
        return files, refused, "%s: %s" % (type(exc).__name__, exc)
    if not stat.S_ISDIR(top.st_mode):
        return files, refused, "not a directory"
    todo = [("", 0)]
    while todo:
        rel, depth = todo.pop()
        try:
            it = os.scandir(os.path.join(root, rel) if rel else root)
        except OSError:
            refused.append({"name": rel, "reason": "unreadable directory"})
            continue
        with it:
            for entry in it:
                name = entry.name
                if name.startswith("."):
                    continue  # hidden files and save_plot's temporary files
                relname = rel + "/" + name if rel else name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # vanished while listing
                if stat.S_ISLNK(st.st_mode):
                    refused.append({"name": relname, "reason": "symbolic link"})
                elif stat.S_ISDIR(st.st_mode):
                    if depth + 1 < MAX_DEPTH:
                        todo.append((relname, depth + 1))
                elif stat.S_ISREG(st.st_mode):
                    files.append({"name": relname, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
                if len(files) >= MAX_ENTRIES:
                    return files, refused, "more than %d files: listing cut" % MAX_ENTRIES
    return files, refused, None


def _sha256(path, size, mtime_ns, relname):
    key = (relname, size, mtime_ns)
    digest = _HASHES.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        if len(_HASHES) > 4 * MAX_ENTRIES:
            _HASHES.clear()
        _HASHES[key] = digest
    return digest


def _path(name):
    """The absolute path of ``name`` inside PLOTS_DIR, or ValueError (the cluster side refuses too)."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name or name.startswith("/"):
        raise ValueError("invalid plot name %r" % (name,))
    parts = name.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise ValueError("invalid plot name %r" % (name,))
    return os.path.join(PLOTS_DIR, *parts)


def list_plots(hashes=True):
    """Every plot file: name (relative to PLOTS_DIR, '/'-separated), size, mtime, sha256."""
    files, refused, error = _walk(PLOTS_DIR)
    out = []
    for entry in files:
        if hashes:
            try:
                entry["sha256"] = _sha256(
                    os.path.join(PLOTS_DIR, entry["name"]), entry["size"], entry["mtime_ns"], entry["name"]
                )
            except OSError:
                continue
        entry["mtime"] = entry["mtime_ns"] / 1e9
        out.append(entry)
    return {"dir": PLOTS_DIR, "files": out, "refused": refused, "error": error}


def scan(inline_limit=0, sweep=False):
    """Plot files new or changed (size or mtime) since the last scan or setup, oldest save first.

    Changed files get their sha256; while the running total stays under ``inline_limit``
    bytes their content is included (base64), so small plots arrive in this same statement.
    With ``sweep``, the matplotlib figures the cell left open are saved first (see
    :func:`save_open_figures`).
    """
    problems = save_open_figures() if sweep else []
    files, refused, error = _walk(PLOTS_DIR)
    # Save order: modification time, then our own save counter (saves within one clock tick).
    files.sort(key=lambda e: (e["mtime_ns"], _ORDER.get(e["name"], 0), e["name"]))
    changed, budget = [], inline_limit
    current = {}
    for entry in files:
        name = entry["name"]
        current[name] = (entry["size"], entry["mtime_ns"])
        if _SEEN.get(name) == current[name]:
            continue
        if not name.lower().endswith(PLOT_SUFFIXES):
            continue
        path = os.path.join(PLOTS_DIR, name)
        entry["mtime"] = entry["mtime_ns"] / 1e9
        try:
            if entry["size"] <= budget:
                with open(path, "rb") as f:
                    data = f.read(entry["size"] + 1)
                if len(data) == entry["size"]:
                    entry["data"] = base64.b64encode(data).decode("ascii")
                    entry["sha256"] = hashlib.sha256(data).hexdigest()
                    budget -= len(data)
            if "sha256" not in entry:
                entry["sha256"] = _sha256(path, entry["size"], entry["mtime_ns"], name)
        except OSError:
            current.pop(name)  # unreadable right now: look again next time
            continue
        changed.append(entry)
    _SEEN.clear()
    _SEEN.update(current)
    out = {"dir": PLOTS_DIR, "files": changed, "refused": refused, "error": error, "total": len(files)}
    if problems:
        out["show_errors"] = problems
    return out


def info(name):
    """Size (bytes), mtime (epoch seconds) and sha256 of plot ``name``."""
    path = _path(name)
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("%r is not a regular file" % (name,))
    return {"name": name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "mtime": st.st_mtime_ns / 1e9,
            "sha256": _sha256(path, st.st_size, st.st_mtime_ns, name)}


def read(name, offset, length):
    """``length`` bytes of plot ``name`` from ``offset``, as :func:`_chunk_text` text.

    The header has the file's size and mtime_ns then; the first chunk's also its sha256, so the
    notebook can verify the whole copy.
    """
    path = _path(name)
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("%r is not a regular file" % (name,))
    header = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if offset == 0:
        header["sha256"] = _sha256(path, st.st_size, st.st_mtime_ns, name)
    return _chunk_text(path, offset, length, header)


#: Compress a chunk when a sample of it shrinks to this fraction or less (bokeh's own data
#: arrays are already gzipped: compressing those costs more time than it saves).
COMPRESS_BELOW = 0.7
_SAMPLE = 16384


def _worth_compressing(data):
    """True when zlib shrinks samples from the start, middle and end of ``data`` enough."""
    if len(data) < 4 * _SAMPLE:
        return len(data) > 512 and len(zlib.compress(data, 1)) <= COMPRESS_BELOW * len(data)
    mid = len(data) // 2
    sample = data[:_SAMPLE] + data[mid:mid + _SAMPLE] + data[-_SAMPLE:]
    return len(zlib.compress(sample, 1)) <= COMPRESS_BELOW * len(sample)


def _chunk_text(path, offset, length, header):
    """``<header> <data>``: the header (``header`` + ``offset``, ``length`` read, ``encoding``
    'zlib' or 'raw') as base64 of its JSON, one space, then the bytes in base64.

    Printed as the statement's text output, which every Livy passes on as one string. Base64
    letters and a space are all JSON strings carry as they are, so no hop (the REPL, Livy, a
    proxy) has a character to escape or unescape in the megabytes around them.
    """
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    header = dict(header, offset=offset, length=len(data), encoding="raw")
    if _worth_compressing(data):
        data = zlib.compress(data, 1)
        header["encoding"] = "zlib"
    head = base64.b64encode(json.dumps(header).encode("utf-8")).decode("ascii")
    return head + " " + _b64text(data)


def bokeh_version():
    """``{"version": V}``: the cluster's bokeh version (None without bokeh)."""
    try:
        import bokeh
    except Exception:
        return {"version": None}
    return {"version": bokeh.__version__}


def read_bokehjs(bundle, version, offset, length):
    """A chunk of BokehJS ``bundle`` (e.g. 'bokeh-widgets') of the cluster's bokeh install, as
    :func:`_chunk_text` text whose header has the bundle's ``size``.

    Refuses if the installed version is not ``version`` (the plot would not render).
    """
    if bundle not in BOKEHJS_BUNDLES:
        raise ValueError("unknown BokehJS bundle %r" % (bundle,))
    import bokeh

    if bokeh.__version__ != version:
        raise ValueError("the cluster has bokeh %s, not %s" % (bokeh.__version__, version))
    path = os.path.join(os.path.dirname(bokeh.__file__), "server", "static", "js", bundle + ".min.js")
    return _chunk_text(path, offset, length, {"size": os.path.getsize(path)})


def _kind(fig):
    """'bokeh', 'matplotlib' or None."""
    try:
        from bokeh.model import Model
    except ImportError:
        Model = None
    if Model is not None and isinstance(fig, Model):
        return "bokeh"
    if getattr(fig, "__name__", "") == "matplotlib.pyplot":
        return "matplotlib"
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return "matplotlib" if isinstance(fig, Figure) else None


def save_plot(fig, name, title=None):
    """Save ``fig`` under PLOTS_DIR as ``name``: bokeh figures as standalone HTML, matplotlib as PNG.

    ``name`` may omit the suffix (.html or .png is added). The file appears atomically, so the
    notebook never pulls half a plot. Returns None, like ``savefig``, so a cell that ends with it
    prints nothing (the file is ``PLOTS_DIR/name``).
    """
    kind = _kind(fig)
    if kind is None:
        raise TypeError(
            "save_plot expects a bokeh figure/layout or a matplotlib figure (or pyplot), got %s" % type(fig).__name__
        )
    suffix = ".html" if kind == "bokeh" else ".png"
    base, ext = os.path.splitext(str(name))
    if not ext:
        name = str(name) + suffix
    elif kind == "bokeh" and ext.lower() not in (".html", ".htm"):
        raise ValueError("bokeh plots are saved as HTML: use a name ending in .html, not %r" % (name,))
    elif kind == "matplotlib" and ext.lower() not in (".png", ".svg", ".pdf", ".jpg", ".jpeg"):
        raise ValueError("matplotlib plots are saved as .png (or .svg/.pdf/.jpg), not %r" % (name,))
    path = _path(name)
    folder = os.path.dirname(path)
    target = None
    if kind == "matplotlib":
        target = fig.gcf() if getattr(fig, "__name__", "") == "matplotlib.pyplot" else fig
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OSError(
            "cannot create the plot directory %s (%s): on EMR run the hail-emr-lab plots step "
            "(lifecycle-scripts/emr/) so it exists and belongs to the Livy user" % (folder, exc)
        ) from exc
    if kind == "bokeh":
        from bokeh.embed import file_html
        from bokeh.resources import CDN

        payload = file_html(fig, CDN, title or os.path.splitext(os.path.basename(name))[0]).encode("utf-8")
    else:
        import io

        buf = io.BytesIO()
        target.savefig(buf, format=os.path.splitext(name)[1].lstrip(".").lower().replace("jpg", "jpeg"))
        payload = buf.getvalue()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _COUNTERS["save"] += 1
    _ORDER[name] = _COUNTERS["save"]
    if target is not None:
        _SAVED_FIGURES[id(target)] = target  # saved on purpose: not saved again when the cell ends
    return None


# ---------------------------------------------------------------------------- show() on the cluster


def _title(fig, kind):
    """A short title of ``fig`` for its file name ('' when it has none)."""
    try:
        if kind == "bokeh":
            title = getattr(fig, "title", None)
            text = getattr(title, "text", title)
        else:
            sup = getattr(fig, "_suptitle", None)
            text = sup.get_text() if sup is not None else ""
            for ax in fig.get_axes() if not text else ():
                text = ax.get_title()
                if text:
                    break
    except Exception:  # a title is a nicety: never fail a show for it
        return ""
    return text if isinstance(text, str) else ""


def show_name(fig, kind):
    """``show-YYYYmmdd-HHMMSS-NNN[-title].html|png``: unique in the session, sorts in call order."""
    _COUNTERS["show"] += 1
    slug = re.sub(r"[^A-Za-z0-9]+", "-", _title(fig, kind)).strip("-").lower()[:40].strip("-")
    return "show-%s-%03d%s.%s" % (
        time.strftime("%Y%m%d-%H%M%S"), _COUNTERS["show"], "-" + slug if slug else "", "html" if kind == "bokeh" else "png"
    )


def _show_bokeh(obj, state=None, browser=None, new=None, notebook_handle=False, **_ignored):
    """Stands in for bokeh.io.showing._show_with_state: saves the figure instead of opening a browser."""
    name = show_name(obj, "bokeh")
    save_plot(obj, name)
    if notebook_handle:
        print("hail-emr-lab: %s is shown as a static plot (no live notebook handle over Livy)" % name)
    return None


def _show_pyplot(*args, **kwargs):
    """Stands in for matplotlib.pyplot.show: saves every open figure (in figure order), then closes them."""
    save_open_figures(strict=True)


def save_open_figures(strict=False):
    """Save the open matplotlib figures under show-... names and close them (Jupyter's inline backend
    closes a cell's figures too). A figure the cell saved with save_plot is only closed.

    Returns the errors as text (``strict`` raises the first one instead).
    """
    pyplot = sys.modules.get("matplotlib.pyplot")
    saved = dict(_SAVED_FIGURES)
    _SAVED_FIGURES.clear()
    if pyplot is None:
        return []
    from matplotlib._pylab_helpers import Gcf

    problems = []
    for manager in sorted(Gcf.get_all_fig_managers(), key=lambda m: m.num):
        fig = manager.canvas.figure
        try:
            if saved.get(id(fig)) is not fig:
                save_plot(fig, show_name(fig, "matplotlib"))
        except Exception as exc:
            if strict:
                raise
            problems.append("figure %s: %s: %s" % (manager.num, type(exc).__name__, exc))
        finally:
            pyplot.close(fig)
    return problems


class _PostImportLoader(object):
    """Wraps a module's loader: runs ``hook(module)`` right after the module is executed."""

    def __init__(self, loader, hook):
        self.loader = loader
        self.hook = hook

    def create_module(self, spec):
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        module.__loader__ = self.loader  # the module looks as if we were never there
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _run_hook(self.hook, module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _PostImportFinder(object):
    """A ``sys.meta_path`` entry that patches a module when it is first imported (PEP 451 API)."""

    hail_emr_lab_post_import = True

    def __init__(self):
        self.hooks = {}
        self.busy = set()

    def find_spec(self, fullname, path=None, target=None):
        hook = self.hooks.get(fullname)
        if hook is None or fullname in self.busy:
            return None
        self.busy.add(fullname)
        try:
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self.busy.discard(fullname)
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        del self.hooks[fullname]
        spec.loader = _PostImportLoader(spec.loader, hook)
        return spec


def _run_hook(hook, module):
    try:
        hook(module)
    except Exception as exc:  # the user's import must still work; say what will not
        print("hail-emr-lab: %s.show will not reach the plot directory: %s: %s"
              % (module.__name__, type(exc).__name__, exc), file=sys.stderr)


def _patch_bokeh_showing(module):
    original = getattr(module, "_hel_original_show_with_state", None) or module._show_with_state
    module._hel_original_show_with_state = original
    module._show_with_state = _show_bokeh  # bokeh.io.show, bokeh.plotting.show and hl.plot.show end here


def _patch_pyplot(module):
    original = getattr(module, "_hel_original_show", None) or module.show
    module._hel_original_show = original
    module.show = _show_pyplot


def route_shows():
    """Route bokeh's ``show`` and ``matplotlib.pyplot.show`` to the plot directory, now if they are
    imported, else when they are first imported (so a session pays nothing for unused libraries)."""
    for entry in list(sys.meta_path):
        if getattr(entry, "hail_emr_lab_post_import", False):
            sys.meta_path.remove(entry)  # set up again (reconnect): the new hooks replace the old
    finder = _PostImportFinder()
    for name, patch in (("bokeh.io.showing", _patch_bokeh_showing), ("matplotlib.pyplot", _patch_pyplot)):
        module = sys.modules.get(name)
        if module is not None:
            _run_hook(patch, module)
        else:
            finder.hooks[name] = patch
    if finder.hooks:
        sys.meta_path.insert(0, finder)
    return sorted(finder.hooks)
