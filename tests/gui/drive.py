#!/usr/bin/python3
"""drive.py — moescope-gtk end to end, driven from outside as a person would.

Starts the real workbench (it must run under an X server with an
accessibility bus: tests/gui/run-gui.sh arranges Xvfb and dbus-run-session)
and works it through AT-SPI (pyatspi), xdotool and the application's
exported actions (org.gtk.Actions over D-Bus, used only for what sits
behind a file dialog): open a model and prompts, run, visit every view,
hover, zoom, select an expert, silence it, Apply, export a figure and the
trace, run an analysis, cancel a long run, see errors, and check that the
settings survive a restart.  Assertions are on what a user sees: accessible
names and texts, values in labels, exported files.  A PNG screenshot of the
screen is saved after each step into the output directory.

Prints TAP.  Usage: drive.py --exe moescope-gtk --source SRC --out DIR
"""
import argparse
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import time

import pyatspi

APP_ID = "io.github.moescope.Workbench"
APP_PATH = "/io/github/moescope/Workbench"

# ------------------------------------------------------------------ TAP

n_run = 0
n_failed = 0
shot_n = 0   # screenshots are numbered across both sessions of the app


def ok(cond, msg):
    global n_run, n_failed
    n_run += 1
    if not cond:
        n_failed += 1
    msg = msg.replace("\n", " ")
    # a skipped step is TAP's "ok N # SKIP reason" (tools/run-tests.sh lists those reasons)
    sep = " " if msg.startswith("# SKIP") else " - "
    print("%s %d%s%s" % ("ok" if cond else "not ok", n_run, sep, msg), flush=True)
    return cond


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line, flush=True)


# ------------------------------------------------------------ the app


def roles_of(acc):
    try:
        return acc.getRoleName()
    except Exception:
        return ""


def name_of(acc):
    try:
        return acc.name or ""
    except Exception:
        return ""


def text_of(acc):
    # The length and the text are two bus calls: a label that changes between
    # them reads truncated (a "(37" read as "(3"), so read until the length
    # holds across the read.
    try:
        t = acc.queryText()
        s = ""
        for _ in range(5):
            n = t.characterCount
            s = t.getText(0, n)
            if t.characterCount == n:
                break
        return s
    except Exception:
        return ""


def desc_of(acc):
    try:
        return acc.description or ""
    except Exception:
        return ""


def children(acc):
    try:
        return [c for c in acc if c is not None]
    except Exception:
        return []


def walk(acc, depth=0):
    yield acc, depth
    for c in children(acc):
        yield from walk(c, depth + 1)


def showing(acc):
    try:
        return acc.getState().contains(pyatspi.STATE_SHOWING)
    except Exception:
        return False


class App:
    def __init__(self, exe, env, out, args=()):
        self.exe, self.env, self.out = exe, env, out
        self.log = open(os.path.join(out, "app.log"), "a")
        self.proc = subprocess.Popen([exe] + list(args), env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.app = None
        self.cache = {}
        t0 = time.time()
        while time.time() - t0 < 30 and self.proc.poll() is None:
            for a in pyatspi.Registry.getDesktop(0):
                # the frame counts once its title is there: on a fast machine
                # it is on the bus a moment before its name is
                if a is not None and name_of(a) == "moescope-gtk" and any(
                        roles_of(c) == "frame" and name_of(c).startswith("moescope") for c in children(a)):
                    self.app = a
                    break
            if self.app:
                break
            time.sleep(0.2)

    def frame(self):
        for c in children(self.app):
            if roles_of(c) == "frame" and name_of(c).startswith("moescope"):
                return c
        return None

    def windows(self):
        """The window's accessibles and those of the file chooser, which runs
        in a child process of its own (its application on the bus)."""
        wins = [c for c in children(self.app)]
        for a in pyatspi.Registry.getDesktop(0):
            if a is None or name_of(a) != "moescope-gtk":
                continue
            try:
                pid = a.get_process_id()
                with open("/proc/%d/stat" % pid) as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except Exception:
                continue
            if ppid == self.proc.pid:
                wins += children(a)
        return wins

    def matches(self, acc, role, name, pred, visible):
        if role and roles_of(acc) != role:
            return False
        if name is not None:
            n = name_of(acc)
            if isinstance(name, str):
                if n != name:
                    return False
            elif not name.search(n):
                return False
        if pred and not pred(acc):
            return False
        if visible and not showing(acc):
            return False
        return True

    def find(self, role=None, name=None, pred=None, root=None, timeout=10, visible=False, quiet=False):
        """First accessible with this role and name (a string: equal; a regex: search).
        Every step of a walk is a D-Bus round trip, so what was found is
        remembered and only checked again (still there, same role and name)."""
        key = (role, name if isinstance(name, str) else getattr(name, "pattern", None), id(root) if root is not None else None)
        t0 = time.time()
        while True:
            hit = self.cache.get(key) if name is not None else None
            if hit is not None and self.matches(hit, role, name, pred, visible):
                return hit
            roots = [root] if root is not None else self.windows()
            for r in roots:
                for acc, _ in walk(r):
                    if self.matches(acc, role, name, pred, visible):
                        if pred is None:
                            self.cache[key] = acc
                        return acc
            if time.time() - t0 > timeout:
                if not quiet:
                    diag("not found: role=%r name=%r" % (role, name))
                return None
            time.sleep(0.2)

    def find_all(self, role=None, name=None, root=None):
        res = []
        for r in ([root] if root is not None else self.windows()):
            for acc, _ in walk(r):
                if role and roles_of(acc) != role:
                    continue
                if name is not None:
                    n = name_of(acc)
                    if (isinstance(name, str) and n != name) or (not isinstance(name, str) and not name.search(n)):
                        continue
                res.append(acc)
        return res

    def label_text(self, name, timeout=10):
        acc = self.find(name=name, timeout=timeout)
        return text_of(acc) if acc is not None else None

    def wait_text(self, name, pattern, timeout=30):
        """Wait until the accessible called name has a text matching pattern; the match or None."""
        rx = re.compile(pattern)
        t0 = time.time()
        last = None
        while time.time() - t0 < timeout:
            acc = self.find(name=name, timeout=1, quiet=True)
            if acc is not None:
                last = text_of(acc) or name_of(acc)
                m = rx.search(last)
                if m:
                    return m
            time.sleep(0.2)
        diag("waited %gs for %r to match %r; last: %r" % (timeout, name, pattern, last))
        return None

    def click(self, acc):
        """Press a button as AT-SPI does (its 'click' action)."""
        try:
            a = acc.queryAction()
            for i in range(a.nActions):
                if a.getName(i) in ("click", "activate", "press"):
                    a.doAction(i)
                    return True
        except Exception:
            pass
        return self.xclick(acc)

    def extents(self, acc):
        e = acc.queryComponent().getExtents(pyatspi.WINDOW_COORDS)
        return e.x, e.y, e.width, e.height

    def xclick(self, acc, fx=0.5, fy=0.5, button=1):
        x, y, w, h = self.extents(acc)
        xdo("mousemove", str(int(x + w * fx)), str(int(y + h * fy)))
        time.sleep(0.1)
        xdo("click", str(button))
        return True

    def action(self, name, param=None):
        """Activate a window action with a parameter (what the dialogs do)."""
        return gdbus_activate(APP_PATH + "/window/1", name, param)

    def app_action(self, name, param=None):
        return gdbus_activate(APP_PATH, name, param)

    def frame_action(self, name):
        """A window action without parameter, as AT-SPI lists it on the frame."""
        f = self.frame()
        a = f.queryAction()
        for i in range(a.nActions):
            if a.getName(i) == name:
                a.doAction(i)
                return True
        return False

    def shot(self, name):
        global shot_n
        shot_n += 1
        path = os.path.join(self.out, "%02d-%s.png" % (shot_n, name))
        time.sleep(0.4)   # let the last frame paint
        subprocess.run(["import", "-window", "root", path], env=self.env, check=False)
        return path

    def page(self, title):
        """Click the page's row in the page list, as a person would."""
        side = self.find(role="list", name="Sidebar", timeout=5)
        row = self.find(role="label", name=title, root=side, timeout=5)
        if row is None:
            return False
        self.xclick(row)
        time.sleep(0.3)
        return True

    def ok_exit(self, rc, msg):
        """Check an exit status; when it is not 0, show the program's last log lines."""
        if not ok(rc == 0, msg):
            self.log.flush()
            diag("moescope-gtk's last log lines:")
            lines = open(os.path.join(self.out, "app.log"), errors="replace").read().splitlines()
            for line in lines[-15:]:
                diag("  " + line)
            # and more of them on stderr, which the test runner shows for a
            # failed test (a sanitizer report or a crash's call stack is long)
            print("moescope-gtk's last log lines (%s):" % msg, file=sys.stderr)
            for line in lines[-80:]:
                print("  " + line, file=sys.stderr)
            sys.stderr.flush()

    def quit(self, timeout=15):
        xdo("key", "ctrl+q")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def xdo(*args):
    return subprocess.run(["xdotool"] + list(args), check=False, capture_output=True, text=True)


def transient_for(title_re):
    """The title of the window the X window titled title_re is transient
    for ("" when it has none), or None without xprop."""
    if shutil.which("xprop") is None:
        return None
    wids = xdo("search", "--name", title_re).stdout.split()
    if not wids:
        return ""
    r = subprocess.run(["xprop", "-id", wids[0], "WM_TRANSIENT_FOR"], capture_output=True, text=True)
    m = re.search(r"window id # (0x[0-9a-f]+)", r.stdout)
    if not m:
        return ""
    r = subprocess.run(["xprop", "-id", m.group(1), "WM_NAME"], capture_output=True, text=True)
    m = re.search(r'= "(.*)"', r.stdout)
    return m.group(1) if m else ""


def gvariant_string(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def gdbus_activate(path, name, param):
    params = "[]" if param is None else "[<%s>]" % (gvariant_string(param) if isinstance(param, str) else "int32 %d" % param)
    r = subprocess.run(["gdbus", "call", "--session", "--dest", APP_ID, "--object-path", path, "--method",
                        "org.gtk.Actions.Activate", name, params, "{}"], capture_output=True, text=True)
    if r.returncode != 0:
        diag("gdbus %s: %s" % (name, r.stderr.strip()))
    return r.returncode == 0


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def distinct_colours(png, x, y, w, h):
    r = subprocess.run(["convert", png, "-crop", "%dx%d+%d+%d" % (w, h, x, y), "+repage", "-format", "%k", "info:"],
                       capture_output=True, text=True)
    try:
        return int(r.stdout.strip())
    except ValueError:
        return 0


def wait_file(path, timeout=20):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return True
        time.sleep(0.2)
    return False


# ------------------------------------------------------------ the steps

INTERACTIVE = {"push button", "toggle button", "check box", "radio button", "combo box", "spin button", "slider",
               "text", "entry", "list", "tree table", "menu item", "switch", "password text", "table"}


def audit_names(app, where):
    """Every interactive control has an accessible name (not a class name)."""
    bad = []
    for w in app.windows():
        for acc, _ in walk(w):
            role = roles_of(acc)
            if role not in INTERACTIVE:
                continue
            # parts GTK builds inside its own composite widgets (a drop-down's
            # button, a scroll bar's range) are named by their parent
            try:
                parent = acc.parent
                prole = roles_of(parent) if parent is not None else ""
            except Exception:
                prole = ""
            if prole in ("combo box", "scroll bar", "spin button") or "GtkColumnListView" in name_of(acc):
                continue
            n = name_of(acc)
            if not n.strip() or re.match(r"^(Gtk|Adw)[A-Z]", n):
                bad.append("%s %r" % (role, n))
    ok(not bad, "%s: every interactive control has an accessible name%s" % (where, (": missing " + "; ".join(bad[:8])) if bad else ""))


def view_titles(app):
    """The pages that are views: every row of the page list but the three fixed pages."""
    side = app.find(role="list", name="Sidebar", timeout=10)
    titles = [name_of(c) for c, _ in walk(side) if roles_of(c) == "label"]
    return [t for t in titles if t not in ("Analyses", "Interventions", "Type prompts")]


def view_area(app, title):
    return app.find(role="image", name=title, timeout=5)


# views whose data a plain trace does not store, and what they say is missing
LATER_VIEWS = {"Baseline vs intervened": r"no parent run", "Sweep": r"no sweep stored"}
# the empty Sweep view also points at its Run sweep bar
LATER_HINT = {"Sweep": r"press Run sweep"}


# the items of the Analysis and Sweep candidates drop-downs, in order
# (analysis/db/run.c ms_analyze_modules, ui/gtk/sweepbar.c mode_items)
ANALYSES = ["load", "coactivation", "affinity", "consistency", "superexperts", "npmi", "riskdiff",
            "crosslingual", "pathways"]
SWEEP_MODES = ["each expert of layers", "each super expert", "strongest by risk difference",
               "strongest by nPMI for a class"]


def dismiss(app):
    """Press the error bar's Dismiss and wait until it has gone: the page
    below moves up at the next layout, so a click aimed at a place read
    before it lands on whatever was below."""
    app.click(app.find(role="push button", name="Dismiss"))
    t0 = time.time()
    while time.time() - t0 < 3:
        e = app.find(name="Error message", timeout=0.5, quiet=True)
        if e is None or not showing(e) or app.extents(e)[3] <= 0:
            break
        time.sleep(0.1)
    time.sleep(0.4)   # the layout after it (the revealer's slide when animations are on)


def shown_item(combo, items):
    """The item a drop-down shows as chosen: the first of its labels that
    names an item (its button comes before its list; the button also holds
    GTK's "(None)" label for when nothing is chosen, hidden)."""
    for acc, _ in walk(combo):
        if acc is not combo and roles_of(acc) == "label":
            t = name_of(acc) or text_of(acc)
            if t in items:
                return t
    return ""


def choose(app, combo, items, want, tries=3):
    """Open a drop-down with the mouse and step to an item with the arrow
    keys, as a person does, then check that it shows that item; a missed
    click (the page still moving, the list opening late) is tried again,
    counting the steps from whatever it shows then."""
    for _ in range(tries):
        got = shown_item(combo, items)
        if not got:
            diag("the drop-down %r shows none of %s: %s" % (name_of(combo), items, [
                name_of(a) or text_of(a) for a, _ in walk(combo) if roles_of(a) == "label"]))
            return False
        d = items.index(want) - items.index(got)
        app.xclick(combo)
        time.sleep(0.5)
        xdo("key", *(["Down"] * d if d > 0 else ["Up"] * -d), "Return")
        time.sleep(0.4)
        if shown_item(combo, items) == want:
            diag("the drop-down %r: %r, %d steps to %r" % (name_of(combo), got, d, want))
            return True
        diag("the drop-down %r shows %r, not %r: again" % (name_of(combo), shown_item(combo, items), want))
        xdo("key", "Escape")
        time.sleep(0.3)
    return False


def wait_view(app, title, timeout=60):
    """Wait until a view page has drawn its figure (or said why not)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        a = view_area(app, title)
        d = desc_of(a) if a is not None else ""
        if a is not None and not d.startswith("Preparing") and d:
            return a, d
        time.sleep(0.3)
    return view_area(app, title), "timeout"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--out", required=True)
    o = ap.parse_args()
    os.makedirs(o.out, exist_ok=True)
    env = dict(os.environ)
    model = os.path.join(o.source, "data/models/default.gguf")
    prompts_small = os.path.join(o.source, "data/prompts/default.jsonl")
    prompts_all = os.path.join(o.source, "data/prompts/all.jsonl")
    n_small = sum(1 for l in open(prompts_small) if l.strip())
    n_all = sum(1 for l in open(prompts_all) if l.strip())
    trace_db = os.path.join(env["XDG_DATA_HOME"], "moescope", "traces")

    # ------------------------------------------------------ start, model
    app = App(o.exe, env, o.out)
    if not ok(app.app is not None and app.frame() is not None, "moescope-gtk starts and shows its window on the accessibility bus"):
        # say why: the program's exit status and its last words
        print("# moescope-gtk %s" % ("exited with status %s" % app.proc.returncode
                                     if app.proc.poll() is not None else "is running, but no titled window is on the bus"))
        app.log.flush()
        for line in open(os.path.join(o.out, "app.log")).read().splitlines()[-10:]:
            print("#   " + line)
        print("1..%d" % n_run)
        return 1
    f = app.frame()
    # the window may be on the bus before it is mapped at its size
    t0 = time.time()
    while True:
        x, y, w, h = app.extents(f)
        if (w > 200 and h > 200) or time.time() - t0 > 10:
            break
        time.sleep(0.2)
    # the default size is 1280 × 820; GTK's client-side frame takes a few pixels of it
    ok(abs(w - 1280) <= 16 and abs(h - 820) <= 16, "the first window is about 1280 × 820 (got %d × %d)" % (w, h))
    ok(app.find(role="label", name="moescope") is not None, "the title says moescope")
    app.shot("start")
    audit_names(app, "empty window")

    ok(app.app_action("open-model", model), "app.open-model runs")
    m = app.wait_text("Model Experts: 16 routed, top-2", r"16 routed, top-2", 20)
    ok(m is not None, "the model's facts appear in the side panel (16 routed experts, top-2)")
    ok(app.label_text("Model Architecture: olmoe") == "olmoe", "architecture olmoe shown")
    ok(app.label_text("Model Memory: private copy") == "private copy", "the panel says the weights are a private copy")
    app.shot("model")

    # ------------------------------------- prompts through the real file chooser
    xdo("key", "ctrl+o")
    dlg = app.find(name=re.compile(r"^Open a model, a prompt set"), timeout=10)
    ok(dlg is not None, "Ctrl+O opens the file chooser")
    if dlg is not None:
        time.sleep(0.8)
        app.shot("file-chooser")
        # the dialog (a process of its own) belongs to the window: a window
        # manager keeps it above the window, as the window's dialog
        parent = transient_for("^Open a model, a prompt set")
        if parent is None:
            diag("xprop is missing (Debian package x11-utils): the dialog's parent is not checked")
        else:
            ok(parent.startswith("moescope"), "the file dialog is transient for the workbench's window (%r)" % parent)
        # typing a path that starts with '/' opens the location entry; Return opens it
        xdo("type", "--delay", "15", prompts_small)
        time.sleep(0.5)
        xdo("key", "Return")
    m = app.wait_text("Prompt source", r"Prompt set: .*default\.jsonl \((\d+)", 20)
    ok(m is not None and int(m.group(1)) == n_small, "the prompts chosen in the file chooser are the prompt set (%s of %d)" % (m.group(1) if m else "?", n_small))
    ok(app.find(role="label", name=re.compile(r"^#0 · "), timeout=10) is not None, "the prompt list shows the prompts")
    app.shot("prompts")

    # ------------------------------------------------------------- run
    run_btn = app.find(role="push button", name="Run", timeout=5)
    ok(run_btn is not None and app.click(run_btn), "Run is pressed")
    # the default set traces in about two seconds: the progress line is checked on the long run below
    app.shot("running")
    m = app.wait_text("Status", r"Traced (\d+) prompts \(([\d,]+) tokens\) into run (\d+)", 180)
    ok(m is not None and int(m.group(1)) == n_small, "the run ends: %s" % (m.group(0) if m else "no end seen"))
    run1 = int(m.group(3)) if m else 1
    m = app.wait_text("Prompt source", r"(\d+) traced in run %d" % run1, 20)
    ok(m is not None and int(m.group(1)) == n_small, "the prompt list shows every prompt as traced")
    title = app.find(role="label", name=re.compile(r"default\.gguf · trace-.*\.db \(run %d\)" % run1), timeout=5)
    ok(title is not None, "the window subtitle names the model, the new database and the run")
    # the database and, while it is open, its -wal / -shm companions
    dbs = [os.path.join(trace_db, f) for f in os.listdir(trace_db) if f.endswith(".db")] if os.path.isdir(trace_db) else []
    ok(len(dbs) == 1, "Run without a database created one in the user's data directory")
    db_path = dbs[0] if dbs else None
    if db_path:
        con = sqlite3.connect(db_path)
        n = con.execute("select count(*) from prompt where run_id = ?", (run1,)).fetchone()[0]
        con.close()
        ok(n == n_small, "the database holds the %d prompts of run %d (%d)" % (n_small, run1, n))
    app.shot("traced")

    # --------------------------------------------------------- every view
    titles = view_titles(app)
    diag("views registered: %s" % ", ".join(titles) if titles else "no view is registered in this build")
    for t in titles:
        ok(app.page(t), "page %s is chosen in the page list" % t)
        area, d = wait_view(app, t)
        # a fresh trace has no intervened run and no sweep: those two views
        # say so (naming what is missing) instead of drawing
        later = LATER_VIEWS.get(t)
        if later and d.startswith("Nothing to show yet"):
            ok(re.search(later, d) is not None, "view %s says what it is waiting for (%s)" % (t, d[:120]))
            if t in LATER_HINT:
                area_ = view_area(app, t)
                ok(re.search(LATER_HINT[t], d) is not None or re.search(LATER_HINT[t], desc_of(area_) or ""),
                   "view %s says how to fill it from the window (%s)" % (t, d[-80:]))
            app.shot("view-" + re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-"))
            continue
        ok(area is not None and d != "timeout" and not d.startswith(("Error", "Nothing")), "view %s draws (%s)" % (t, d[:120]))
        if t == "Token strip":
            spin = app.find(name="Token strip: layer (auto = the view's default)", timeout=5)
            ok(spin is not None and text_of(spin) == "auto",
               "its Layer field reads auto (%r)" % (text_of(spin) if spin is not None else None))
        if t == "Expert co-activation":
            spin = app.find(name="Expert co-activation: top N (auto = the view's default)", timeout=5)
            ok(spin is not None and text_of(spin) == "auto",
               "its Top field reads auto, not 0 (%r)" % (text_of(spin) if spin is not None else None))
        png = app.shot("view-" + re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-"))
        if area is not None:
            x, y, w, h = app.extents(area)
            ok(distinct_colours(png, x, y, w, h) > 8, "view %s shows a figure (colours in its area)" % t)
    audit_names(app, "window with a trace")

    # ------------------------------------------------------- hover, zoom
    # the token x layer heat map is the view that zooms (issue: zoom and pan on it)
    hover_view = next((t for t in titles if re.search(r"heat", t, re.I)),
                      next((t for t in titles if re.search(r"token", t, re.I)), titles[0] if titles else None))
    if not hover_view:
        ok(True, "# SKIP no view is registered in this build: no hover, zoom or pan to try")
    else:
        app.page(hover_view)
        area, _ = wait_view(app, hover_view)
        x, y, w, h = app.extents(area)
        hit = None
        for fx, fy in ((0.3, 0.5), (0.5, 0.5), (0.4, 0.35), (0.6, 0.6)):
            xdo("mousemove", str(int(x + w * fx)), str(int(y + h * fy)))
            m = app.wait_text("Hover", r"\S", 3)
            if m:
                hit = app.label_text("Hover")
                break
        ok(hit is not None and re.search(r"\d", hit or ""), "hovering %s shows what is under the pointer: %r" % (hover_view, (hit or "")[:160]))
        app.shot("hover")
        zoom_label = "%s: zoom" % hover_view
        zin = app.find(role="push button", name="%s: zoom in" % hover_view, timeout=3)
        can_zoom = zin is not None and zin.getState().contains(pyatspi.STATE_SENSITIVE)
        if can_zoom:
            xdo("mousemove", str(int(x + w * 0.5)), str(int(y + h * 0.5)))
            for _ in range(3):
                xdo("keydown", "ctrl")
                xdo("click", "4")
                xdo("keyup", "ctrl")
                time.sleep(0.1)
            m = app.wait_text(zoom_label, r"Showing x ([\d.]+)–([\d.]+)", 5)
            ok(m is not None, "ctrl+scroll zooms in about the pointer: %s" % (m.group(0) if m else "-"))
            before = m.group(0) if m else ""
            xdo("mousemove", str(int(x + w * 0.5)), str(int(y + h * 0.5)))
            xdo("mousedown", "1")
            for i in range(1, 11):
                xdo("mousemove", str(int(x + w * 0.5 + 12 * i)), str(int(y + h * 0.5)))
                time.sleep(0.03)
            xdo("mouseup", "1")
            m = app.wait_text(zoom_label, r"Showing x ([\d.]+)–([\d.]+)", 5)
            ok(m is not None and m.group(0) != before, "dragging pans the zoomed figure (%s → %s)" % (before, m.group(0) if m else "-"))
            seltxt = app.label_text("Selection") or ""
            ok(re.search(r"nothing selected", seltxt) is not None, "a drag is a pan, not a click: nothing selected (%r)" % seltxt)
            app.shot("zoomed")
            app.click(app.find(role="push button", name="%s: whole figure" % hover_view))
            ok(app.wait_text(zoom_label, r"^Whole figure", 5) is not None, "'whole figure' resets the zoom")
        else:
            ok(True, "# SKIP %s has no zoom frame in this build" % hover_view)

    # ------------------------------------------------ linked selection
    sel_done = False
    for t in titles:
        app.page(t)
        area, d = wait_view(app, t)
        if area is None or d.startswith(("Error", "Nothing")):
            continue
        x, y, w, h = app.extents(area)
        for fx, fy in ((0.3, 0.5), (0.5, 0.5), (0.45, 0.3), (0.6, 0.7), (0.35, 0.6)):
            xdo("mousemove", str(int(x + w * fx)), str(int(y + h * fy)))
            time.sleep(0.2)
            xdo("click", "1")
            if app.wait_text("Selection", r"Selected: layer \d+ · expert \d+", 2):
                sel_done = True
                break
        if sel_done:
            break
    if titles:
        ok(sel_done, "an expert is selected by clicking a view")
    else:
        ok(True, "# SKIP no view is registered in this build: the expert is selected through win.select-expert")
    if not sel_done:
        app.action("select-expert", "1:3")
    m = app.wait_text("Selection", r"Selected: layer (\d+) · expert (\d+)", 5)
    ok(m is not None, "the selection line names it: %s" % (m.group(0) if m else "-"))
    sel = (int(m.group(1)), int(m.group(2))) if m else (1, 3)
    f = app.wait_text("Prompt filter", r"Prompts where layer %d · expert %d fires: (\d+) of (\d+)" % sel, 10)
    ok(f is not None and int(f.group(1)) <= int(f.group(2)) == n_small,
       "the prompt list keeps the prompts where it fires: %s" % (f.group(0) if f else "-"))
    rows = [a for a in app.find_all(role="label", name=re.compile(r"^#\d+ · "))]
    ok(f is not None and len(rows) <= int(f.group(1)), "the list shows no more rows than that (%d)" % len(rows))
    app.shot("selected")
    for t in titles[:3]:
        app.page(t)
        wait_view(app, t)
        app.shot("selected-" + re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-"))

    # ------------------------------------------------------- interventions
    app.page("Interventions")
    cell = app.wait_text("Selected cell", r"Layer %d, expert %d: no intervention" % sel, 5)
    ok(cell is not None, "the intervention panel's cell follows the selection")
    ok(app.click(app.find(role="push button", name="Selected cell: Silence")), "Silence is pressed")
    s = app.wait_text("Intervention set", r"Intervention set: silence %d:%d$" % sel, 5)
    ok(s is not None, "the set reads 'silence %d:%d'" % sel)
    grid = app.find(role="image", name="Intervention grid", timeout=5)
    gx, gy, gw, gh = app.extents(grid)
    other = (0 if sel[0] != 0 else 1, 5 if sel[1] != 5 else 6)
    cx, cy = gx + 72 + other[1] * 26 + 13, gy + 22 + other[0] * 22 + 11
    expected = [r"silence %d:%d" % other, r"force %d:%d" % other, None]
    names = ["silence", "force", "none"]
    for i, pat in enumerate(expected):
        xdo("mousemove", str(cx), str(cy))
        xdo("click", "1")
        time.sleep(0.3)
        txt = app.label_text("Intervention set") or ""
        if pat:
            ok(re.search(pat, txt) is not None, "click %d on layer %d expert %d: %s (%r)" % (i + 1, other[0], other[1], names[i], txt))
        else:
            ok(("%d:%d" % other) not in txt.split("silence")[-1] and re.search(r"silence %d:%d" % sel, txt),
               "click 3 clears it again, the selected expert stays silenced (%r)" % txt)
        if i == 0:
            app.shot("grid-click")
    steer = app.find(role="slider", name="Steer the selected expert (router-logit bias)")
    ok(steer is not None, "the steer slider is there")
    topk = app.find(role="spin button", name="Top-k of the selected layer (auto = the model's)", timeout=5)
    ok(topk is not None and text_of(topk) == "auto",
       "the layer's top-k reads auto while it is the model's (%r)" % (text_of(topk) if topk is not None else None))
    app.shot("interventions")

    # ------------------------------------------------------------ Apply
    first = app.find(role="label", name=re.compile(r"^#0 · "), timeout=5)
    if first is not None:
        app.xclick(first)
    ok(app.wait_text("Apply prompt", r"^Prompt #0: ", 5) is not None, "prompt #0 is the one Apply runs")
    ok(app.click(app.find(role="push button", name="Apply")), "Apply is pressed")
    m = app.wait_text("Apply result", r"Prompt #0 with “silence %d:%d”, (\d+) tokens generated, in ([\d.]+) s: KL mean ([\d.e+-]+) nats" % sel, 30)
    ok(m is not None, "Apply shows the comparison: %s" % (m.group(0) if m else app.label_text("Apply result")))
    if m:
        diag("Apply latency on the default model: %s s for %s tokens" % (m.group(2), m.group(1)))
    base = text_of(app.find(name="Baseline continuation", role="label", pred=lambda a: text_of(a) != "Baseline continuation"))
    run = text_of(app.find(name="Intervened continuation", role="label", pred=lambda a: text_of(a) != "Intervened continuation"))
    ok(bool(base.strip()) and bool(run.strip()), "both continuations are shown side by side (%r | %r)" % (base[:60], run[:60]))
    kl = app.find(role="image", name="Per-token KL strip")
    x, y, w, h = app.extents(kl)
    hit = None
    for fx in (0.5, 0.6, 0.4, 0.7, 0.3):
        xdo("mousemove", str(int(x + w * fx)), str(int(y + h * 0.5)))
        if app.wait_text("Hover", r"KL [\d.e+-]+ nats", 2):
            hit = app.label_text("Hover")
            break
    ok(hit is not None, "hovering the KL strip names the token and its KL: %r" % (hit or "")[:150])
    app.shot("apply")

    # --------------------------------------------------------- exports
    if not titles:
        ok(True, "# SKIP no view is registered in this build: no figure to export")
    else:
        app.page(titles[0])
        wait_view(app, titles[0])
        for ext in ("png", "svg", "pdf"):
            p = os.path.join(o.out, "export-view.%s" % ext)
            app.action("export-view", "1200x800:%s" % p)
            ok(wait_file(p), "win.export-view writes %s" % os.path.basename(p))
        ok(png_size(os.path.join(o.out, "export-view.png")) == (1200, 800), "the PNG is 1200 × 800")
        with open(os.path.join(o.out, "export-view.svg"), "rb") as fh:
            ok(b"<svg" in fh.read(2000), "the SVG is an SVG")
        with open(os.path.join(o.out, "export-view.pdf"), "rb") as fh:
            ok(fh.read(5) == b"%PDF-", "the PDF is a PDF")
        # the same through the Export dialog
        xdo("key", "ctrl+e")
        dlg = app.find(role="frame", name="Export", timeout=5) or app.find(name="Export", role="dialog", timeout=2)
        ok(dlg is not None, "Ctrl+E opens the Export dialog")
        if dlg is not None:
            p = os.path.join(o.out, "dialog-view.png")
            entry = app.find(role="text", name="File or folder", root=dlg)
            entry.queryEditableText().setTextContents(p)
            app.shot("export-dialog")
            app.click(app.find(role="push button", name="Export", root=dlg))
            ok(wait_file(p), "the dialog exports the view as PNG")
    for spec, check in (("sqlite:%s/trace.sql", b"CREATE TABLE"), ("postgresql:%s/trace.pgsql", b"CREATE TABLE"),
                        ("csv:%s/trace-csv", None)):
        target = spec.split(":", 1)[1] % o.out
        app.action("export-trace", spec % o.out)
        if check is None:
            t0 = time.time()
            while time.time() - t0 < 30 and not (os.path.isdir(target) and any(f.endswith(".csv") for f in os.listdir(target))):
                time.sleep(0.3)
            csvs = sorted(os.listdir(target)) if os.path.isdir(target) else []
            ok(any(f.startswith("routing") for f in csvs) or len(csvs) >= 3, "CSV export writes one file per table (%s)" % ", ".join(csvs[:8]))
        else:
            ok(wait_file(target, 30), "the trace exports to %s" % os.path.basename(target))
            app.wait_text("Status", r"Exported the trace", 30)
            with open(target, "rb") as fh:
                ok(check in fh.read(), "%s holds the schema (%s)" % (os.path.basename(target), check.decode()))
    p = os.path.join(o.out, "interventions.txt")
    app.action("save-interventions", p)
    ok(wait_file(p, 5) and ("silence %d:%d" % sel) in open(p).read(), "the intervention set is saved as text")
    app.shot("exported")

    # --------------------------------------------------------- analyses
    app.page("Analyses")
    ok(app.click(app.find(role="push button", name="Run analysis")), "Run analysis (load) is pressed")
    m = app.wait_text("Table information", r"an_load\w*: (\d+) rows", 60)
    ok(m is not None and int(m.group(1)) > 0, "the load analysis's table is shown: %s" % (m.group(0) if m else app.label_text("Table information")))
    cells = [a for a in app.find_all(role="label", root=app.find(role="tree table", name="Analysis result table")) if text_of(a)]
    ok(len(cells) > 4, "the table has cells a user can read (%d)" % len(cells))
    # numbers are drawn whole: each cell is given the width of its text (an
    # ellipsized "0.4…" in a squeezed column gets about 5 px a character)
    nums = [(text_of(a), app.extents(a)[2]) for a in cells if re.fullmatch(r"-?[0-9.e+-]+", text_of(a))]
    tight = min(nums, key=lambda x: x[1] / len(x[0])) if nums else None
    diag("narrowest number cell for its text: %r" % (tight,))
    ok(tight is not None and tight[1] >= 7 * len(tight[0]),
       "every number in the table has room for all its digits (narrowest %r)" % (tight,))
    app.shot("analyses")
    lay = app.find(role="spin button", name="Layer (all = every MoE layer)", timeout=5)
    ok(lay is not None and text_of(lay) == "all",
       "the Analyses page's Layer field reads all, not -1 (%r)" % (text_of(lay) if lay is not None else None))
    # only the chosen analysis's own fields show, and they fit in the window
    dd = app.find(role="combo box", name="Analysis")
    if dd is not None:
        # its list opens on the chosen entry (GTK 4.8 does not mark the
        # list's rows as showing to AT-SPI: the keys move from it)
        ok(choose(app, dd, ANALYSES, "riskdiff"), "the Analysis list is on riskdiff")
    # GTK 4.8 does not mark entries as showing to AT-SPI: where a field is
    # drawn is read from its extents (a hidden one is left out or has none)
    rd = app.find(name="Risk difference: set 2 value", timeout=5, quiet=True)
    npmi = app.find(name="nPMI classes (--by)", timeout=1, quiet=True)
    frame_w = app.extents(app.frame())[2]
    rd_ext = app.extents(rd) if rd is not None else None
    npmi_ext = app.extents(npmi) if npmi is not None else None
    fit = rd_ext is not None and rd_ext[2] > 0 and rd_ext[0] >= 0 and rd_ext[0] + rd_ext[2] <= frame_w
    hidden = npmi_ext is None or npmi_ext[2] <= 0 or npmi_ext[3] <= 0
    diag("riskdiff's set 2 field at %s, nPMI's classes field at %s, in a frame %d wide" % (rd_ext, npmi_ext, frame_w))
    ok(dd is not None and fit and hidden,
       "choosing riskdiff shows its own fields inside the window and hides nPMI's")

    # ------------------------------------------------ errors, in the window
    bad = os.path.join(o.out, "not-a-model.gguf")
    with open(bad, "w") as fh:
        fh.write("this is not a model\n")
    app.app_action("open-model", bad)
    m = app.wait_text("Error message", r"Cannot open the model: .*not-a-model\.gguf", 10)
    ok(m is not None, "a bad file is a clear message in the window: %r" % (app.label_text("Error message") or "")[:150])
    ok(app.proc.poll() is None, "and the application is still running")
    app.shot("error")
    dismiss(app)

    # a locked database: another process holds the write lock while Run starts
    if db_path:
        lock = sqlite3.connect(db_path, timeout=1, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        app.click(app.find(role="push button", name="Run"))
        time.sleep(1)
        app.page("Type prompts")
        # every AT-SPI answer comes from the window's main loop: a blocked loop would time out here
        ok(app.find(role="text", name="Typed prompts", timeout=3) is not None,
           "the window answers while the run waits for the locked database")
        m = app.wait_text("Error message", r"Run failed: .*locked", 30)
        ok(m is not None, "a locked database is a clear message: %r" % (app.label_text("Error message") or "")[:150])
        lock.execute("ROLLBACK")
        lock.close()
        app.shot("locked")
        dismiss(app)

    # ------------------------ the file chooser beside another program on the database
    # A chooser reads the files it lists; in the window's process, closing them
    # would drop its SQLite locks (POSIX locks belong to a process), and another
    # program closing the database would then take itself for the last one and
    # delete the log (-wal) and index (-shm) under the open window.
    if db_path:
        xdo("key", "ctrl+o")
        dlg = app.find(name=re.compile(r"^Open a model, a prompt set"), timeout=10)
        ok(dlg is not None, "Ctrl+O opens the file chooser again")
        xdo("type", "--delay", "15", os.path.dirname(db_path) + "/")
        time.sleep(2.5)   # it lists the database's folder
        app.shot("file-chooser-db-folder")
        con = sqlite3.connect(db_path)
        con.execute("select count(*) from run").fetchone()
        con.close()
        ok(os.path.exists(db_path + "-wal") and os.path.exists(db_path + "-shm"),
           "another program that reads the database while the chooser lists its folder leaves the open window's -wal and -shm")
        # Escape closes the location's completions first, then the dialog
        for _ in range(4):
            xdo("key", "Escape")
            time.sleep(0.5)
            if app.find(name=re.compile(r"^Open a model, a prompt set"), timeout=0, quiet=True) is None:
                break
        ok(app.find(name=re.compile(r"^Open a model, a prompt set"), timeout=0, quiet=True) is None,
           "Escape closes the file chooser")
        extra = os.path.join(o.out, "extra-prompts.txt")
        with open(extra, "w") as fh:
            fh.write("Another program adds a run.\nThe window shows it.\n")
        cli = os.path.join(os.path.dirname(o.exe), "..", "..", "app", "moescope")
        r = subprocess.run([cli, "trace", model, "--prompts", extra, "--db", db_path], capture_output=True, text=True)
        con = sqlite3.connect(db_path)
        new_run = con.execute("select max(run_id) from run").fetchone()[0]
        con.close()
        ok(r.returncode == 0, "another program traces into the open database (run %s): %s" % (new_run, r.stderr.strip()[-200:]))
        dd = app.find(role="combo box", name="Run", timeout=5)
        item = None
        if dd is not None and app.xclick(dd):
            # (the list's rows are on the bus, but GTK 4.8 does not mark them showing)
            item = app.find(role="label", name=re.compile(r"^run %d · trace · 2 prompts" % new_run), timeout=20)
            app.shot("runs-after-chooser")
            xdo("key", "Escape")
        ok(item is not None, "the window's run list shows the other program's run %s" % new_run)
        # opening the database's own log is refused without reading it (which would drop the locks too)
        app.app_action("open", db_path + "-wal")
        m = app.wait_text("Error message", r"Cannot open .*-wal: it is a working file of the open database", 10)
        ok(m is not None, "opening the open database's -wal is refused: %r" % (app.label_text("Error message") or "")[:150])
        dismiss(app)
        con = sqlite3.connect(db_path)
        con.execute("select count(*) from run").fetchone()
        con.close()
        ok(os.path.exists(db_path + "-wal"), "and the window's locks held: another program's reader leaves the -wal")

    # ------------------------------------------------ typed prompts
    app.page("Type prompts")
    tv = app.find(role="text", name="Typed prompts")
    tv.queryEditableText().setTextContents("The cat sat on the mat.\nDer Hund schläft im Garten.\n")
    app.find(role="text", name="Labels for the typed prompts (key=value, …)").queryEditableText().setTextContents("source=typed")
    app.click(app.find(role="push button", name="Use these prompts"))
    m = app.wait_text("Prompt source", r"prompt set: typed prompts \(2, not this run's: Run traces them\)", 10)
    ok(m is not None, "typed prompts become the prompt set, and the line says the run shown is not theirs: %r"
       % app.label_text("Prompt source"))
    # that line is read on screen, not only by a screen reader: it wraps
    # onto more lines rather than being cut at the panel's edge, and the
    # panel keeps its width
    src_l = app.find(name="Prompt source", timeout=5)
    run_dd = app.find(role="combo box", name="Run", timeout=5)
    lx, ly, lw, lh = app.extents(src_l) if src_l is not None else (0, 0, 0, 0)
    dw = app.extents(run_dd)[2] if run_dd is not None else -1
    ok(lh >= 2 * 14 and 0 < lw <= dw + 16,
       "the prompt source line wraps within the side panel (%dx%d px; the run list is %d px wide)" % (lw, lh, dw))
    # the list keeps showing the run's prompts (what the views and Apply use), not a mix of both
    row0 = app.find(role="label", name=re.compile(r"^#0 · "), timeout=5)
    ok(row0 is not None and "The cat sat" not in name_of(row0) and app.find(
        role="label", name=re.compile(r"^#\d+ · .*The cat sat"), timeout=1, quiet=True) is None,
       "the prompt list still shows the run's prompt #0 (%r), not a typed prompt in its place"
       % (name_of(row0)[:60] if row0 is not None else None))
    app.shot("typed")

    # ------------------------------------- a sweep run from the window
    # the two typed prompts keep it short: 16 experts of layer 1 and 2 controls
    app.page("Sweep")
    layers = app.find(name="Sweep layers", timeout=5)
    ok(layers is not None and text_of(layers) == "*", "the Sweep page offers a layer list, every layer by default")
    if layers is not None:
        layers.queryEditableText().setTextContents("1")
    ctl = app.find(role="spin button", name="Random controls per shape", timeout=5)
    if ctl is not None:
        ctl.queryValue().currentValue = 2
    ok(app.click(app.find(role="push button", name="Run sweep")), "Run sweep is pressed")
    m = app.wait_text("Status", r"Sweep (\d+) stored: (\d+) sets × (\d+) prompts in [\d.]+ s; the strongest: (silence 1:\d+)", 180)
    ok(m is not None and int(m.group(2)) == 18 and int(m.group(3)) == 2,
       "the sweep runs and the status names its sets and the strongest: %s" % (m.group(0) if m else app.label_text("Status")))
    d = ""
    t0 = time.time()
    while time.time() - t0 < 60:
        area, d = wait_view(app, "Sweep")
        if not d.startswith("Nothing"):
            break
        time.sleep(0.3)
    ok(not d.startswith(("Nothing", "Error")) and d != "timeout", "the Sweep view draws the new sweep (%s)" % d[:100])
    png = app.shot("sweep-run")
    if area is not None:
        x, y, w, h = app.extents(area)
        ok(distinct_colours(png, x, y, w, h) > 8, "the sweep figure has colours in its area")
    if m and db_path:
        con = sqlite3.connect(db_path)
        n, labels = con.execute("select count(*), group_concat(label) from sweep_candidate where sweep_id = ?",
                                (int(m.group(1)),)).fetchone()
        con.close()
        ok(n == 18 and m.group(4) in labels.split(","),
           "the database holds the sweep's 18 sets, the strongest among them (%d)" % n)
    layers = app.find(name="Sweep layers", timeout=5)
    if layers is not None:
        layers.queryEditableText().setTextContents("9")
        app.click(app.find(role="push button", name="Run sweep"))
        m = app.wait_text("Error message", r"Run sweep: layers: layer out of range 0\.\.3 in '9'", 10)
        ok(m is not None, "a layer out of range is said at once: %r" % (app.label_text("Error message") or "")[:120])
        dismiss(app)
        layers.queryEditableText().setTextContents("*")

    # ------------------------------ a sweep of the strongest experts by nPMI
    # the classes offered are those of the stored nPMI analysis: none before
    # it runs, then its languages; the sweep silences the top 3 of the chosen
    # class one by one, then all together (--from-analysis npmi:CLASS --top 3)
    mode = app.find(role="combo box", name="Sweep candidates", timeout=5)
    if mode is not None:
        ok(choose(app, mode, SWEEP_MODES, "strongest by nPMI for a class"), "the sweep candidates are on nPMI")
    m = app.wait_text("Status", r"No nPMI analysis is stored yet", 5)
    ok(m is not None, "choosing nPMI before any nPMI analysis says how to get one: %r" % app.label_text("Status"))
    app.page("Analyses")
    dd = app.find(role="combo box", name="Analysis")
    if dd is not None:
        ok(choose(app, dd, ANALYSES, "npmi"), "the Analysis list is on npmi")
    by = app.find(name="nPMI classes (--by)", timeout=5)
    if by is not None:
        by.queryEditableText().setTextContents("label:language")
    ok(app.click(app.find(role="push button", name="Run analysis")), "Run analysis (npmi by language) is pressed")
    m = app.wait_text("Table information", r"an_npmi\w*: (\d+) rows", 60)
    ok(m is not None and int(m.group(1)) > 0, "the nPMI table is stored: %s" % (m.group(0) if m else app.label_text("Table information")))
    app.page("Sweep")
    cls = app.find(role="combo box", name="Sweep nPMI class", timeout=5)
    ok(cls is not None and app.extents(cls)[2] > 0, "the Sweep page now offers a class to choose")
    top_n = app.find(role="spin button", name="Sweep strongest experts", timeout=5)
    ok(top_n is not None and app.extents(top_n)[2] > 0 and abs(top_n.queryValue().currentValue - 8) < 0.5,
       "and how many of its strongest experts, 8 by default (--top)")
    if top_n is not None:
        top_n.queryValue().currentValue = 3
    ok(app.click(app.find(role="push button", name="Run sweep")), "Run sweep (nPMI) is pressed")
    m = app.wait_text("Status", r"Sweep (\d+) \(nPMI class (\S+)\) stored: (\d+) sets × (\d+) prompts in [\d.]+ s", 180)
    ok(m is not None and int(m.group(3)) > 1,
       "the nPMI sweep runs, is stored and names its class: %s" % (m.group(0) if m else app.label_text("Status")))
    if m and db_path:
        con = sqlite3.connect(db_path)
        first = con.execute("select min(class) from an_npmi").fetchone()[0]
        top = [r[0] for r in con.execute("select layer || ':' || expert from an_npmi where class = ? "
                                          "order by npmi desc, count desc, layer, expert limit 3", (m.group(2),))]
        got = [r[0] for r in con.execute("select label from sweep_candidate where sweep_id = ? and kind = 'candidate' "
                                          "order by cand", (int(m.group(1)),))]
        con.close()
        diag("nPMI top of %s: %s; sweep sets: %s" % (m.group(2), top, got[:10]))
        ok(m.group(2) == first, "the first stored class, %s, is the one chosen (%s)" % (first, m.group(2)))
        ok(len(top) == 3 and got == ["silence " + t for t in top] + ["silence " + " ".join(top)],
           "the sweep's sets are the class's 3 strongest experts by nPMI, in order, then the 3 together (%s)" % got)
    app.shot("sweep-npmi")

    # ------------------------------------------------ a long run, cancelled
    app.app_action("open-prompts", prompts_all)
    ok(app.wait_text("Prompt source", r"prompt set: .*all\.jsonl \(%d\)" % n_all, 20) is not None, "the long prompt set is open")
    exp = app.find(name="Run options", role="push button")
    dd = app.find(role="combo box", name="Run", timeout=5)
    w_closed = app.extents(dd)[2] if dd is not None else -1
    if exp is not None:
        app.click(exp)
    time.sleep(0.5)
    w_open = app.extents(dd)[2] if dd is not None else -2
    ok(w_closed > 0 and w_open == w_closed,
       "opening Run options keeps the side panel's width (the run list %d px, then %d px)" % (w_closed, w_open))
    gen = app.find(role="spin button", name="Tokens generated per prompt", timeout=5)
    gen.queryValue().currentValue = 96
    time.sleep(0.3)
    ok(abs(gen.queryValue().currentValue - 96) < 0.5, "96 tokens per prompt make the run long")
    # the window's own Cancel (a dialog met earlier may hold one too), found
    # before the run: a walk of the window with its long prompt list can take
    # longer than the run has left
    cancel = app.find(role="push button", name="Cancel", root=app.frame())
    app.click(app.find(role="push button", name="Run"))
    counts = []
    t0 = time.time()
    while time.time() - t0 < 120:
        m = re.search(r"(\d+) traced in run (\d+)", app.label_text("Prompt source") or "")
        if m and int(m.group(2)) != run1:
            counts.append(int(m.group(1)))
            if int(m.group(1)) >= 3:
                break
        time.sleep(0.3)
    m = app.wait_text("Progress details", r"Tracing: ([\d,]+) / ([\d,]+) prompts · [\d,]+ tokens · \d+ tokens/s · about .* left", 10)
    ok(m is not None and int(m.group(2).replace(",", "")) == n_all,
       "the progress line shows prompts done of %d, tokens/s and time left: %s" % (n_all, m.group(0) if m else "-"))
    ok(len(counts) > 0 and counts[-1] >= 3 and counts[-1] < n_all,
       "results appear while the run goes on (traced counts seen: %s)" % sorted(set(counts)))
    app.shot("long-run")
    ok(cancel is not None and app.click(cancel), "Cancel is pressed")
    m = app.wait_text("Status", r"Cancelled: (\d+) of (\d+) prompts committed and kept in run (\d+) \(stopped ([\d.]+) s after Cancel\)", 30)
    ok(m is not None, "the run stops and says what it kept: %s" % (m.group(0) if m else app.label_text("Status")))
    if m:
        kept, run2, dt = int(m.group(1)), int(m.group(3)), float(m.group(4))
        diag("cancel latency: %.3f s" % dt)
        ok(dt < 1.0, "Cancel stops within a second (%.3f s)" % dt)
        con = sqlite3.connect(db_path)
        n = con.execute("select count(*) from prompt where run_id = ?", (run2,)).fetchone()[0]
        con.close()
        ok(n == kept and kept >= 3, "every committed prompt is kept in the database (%d = %d)" % (n, kept))
        ok(app.wait_text("Prompt source", r"^%d traced in run %d" % (kept, run2), 10) is not None, "and the list shows them")
    app.shot("cancelled")

    # ------------------------------------------------ shortcuts window
    xdo("key", "F1")
    sw = app.find(name=re.compile(r"Shortcuts"), role="frame", timeout=5) or app.find(name=re.compile(r"Shortcuts"), timeout=2)
    ok(sw is not None, "F1 shows the keyboard shortcuts")
    app.shot("shortcuts")
    xdo("key", "Escape")
    time.sleep(0.5)

    # ------------------------------------------------ settings across sessions
    # the toplevel, not GTK's 1 × 1 client leader window
    wid = xdo("search", "--onlyvisible", "--pid", str(app.proc.pid)).stdout.split()
    if wid:
        xdo("windowsize", wid[-1], "1100", "760")
        time.sleep(0.8)
    rc = app.quit()
    app.ok_exit(rc, "Ctrl+Q quits cleanly (exit %s)" % rc)
    ini = os.path.join(env["XDG_CONFIG_HOME"], "moescope", "workbench.ini")
    text = open(ini).read() if os.path.exists(ini) else ""
    mw, mh = re.search(r"width=(\d+)", text), re.search(r"height=(\d+)", text)
    saved = (int(mw.group(1)), int(mh.group(1))) if mw and mh else (0, 0)
    ok(abs(saved[0] - 1100) <= 16 and abs(saved[1] - 760) <= 16,
       "the resized window's size is remembered in %s (%d × %d)" % (os.path.basename(ini), saved[0], saved[1]))
    ok(re.search(r"\[recent-model\]\n0=.*default\.gguf", text) is not None, "the model is in the recent files")
    app2 = App(o.exe, env, o.out)
    ok(app2.app is not None, "moescope-gtk starts again")
    if app2.app is not None:
        x, y, w, h = app2.extents(app2.frame())
        ok(abs(w - 1100) <= 16 and abs(h - 760) <= 16, "with the remembered size (%d × %d)" % (w, h))
        app2.click(app2.find(name="Open menu", pred=lambda a: roles_of(a) in ("push button", "toggle button"), timeout=5))
        rec = app2.find(name="Recent", timeout=5)
        if rec is not None:
            app2.click(rec)
        item = app2.find(name=re.compile(r"^Model: default\.gguf"), timeout=5)
        ok(item is not None, "the Open menu lists the recent model")
        app2.shot("restart-recent")
        xdo("key", "Escape")
        xdo("key", "Escape")
        # with no window manager X keyboard focus does not come back after a
        # popover closes, so keys go nowhere: quit through the app.quit action
        # (the menu's Quit; Ctrl+Q was checked in the first session)
        app2.app_action("quit")
        try:
            rc = app2.proc.wait(15)
        except subprocess.TimeoutExpired:
            app2.proc.kill()
            rc = None
        app2.ok_exit(rc, "quits again (exit %s)" % rc)

    # --------------------------------------- a PostgreSQL trace, by URI
    uri = os.environ.get("MS_GUI_PGURI")
    if not uri:
        ok(True, "# SKIP the PostgreSQL step: %s" % (os.environ.get("MS_GUI_PG_SKIP") or "no server"))
    else:
        shown = re.sub(r":[^:@/]*@", "@", uri)   # the URI without its password
        app3 = App(o.exe, env, o.out, args=[model, "--db", uri])
        ok(app3.app is not None and app3.frame() is not None, "moescope-gtk MODEL --db postgresql://… starts")
        if app3.app is not None and app3.frame() is not None:
            # the sidebar's database line, not the status bar: the model and the
            # database open at once and the status shows whichever ended last
            lab = app3.find(role="label", name=re.compile(r"^postgresql://"), timeout=60)
            got = name_of(lab) if lab is not None else None
            ok(got == shown, "the sidebar says the PostgreSQL database is open, shown without its password (%s)" % got)
            m = app3.wait_text("Prompt source", r"(\d+) traced in run (\d+)", 30)
            ok(m is not None and int(m.group(1)) == n_small,
               "its run is read from the server: %s of %d prompts traced" % (m.group(1) if m else None, n_small))
            ok(app3.page("Expert load"), "page Expert load is chosen")
            area, d = wait_view(app3, "Expert load")
            ok(area is not None and d != "timeout" and not d.startswith(("Error", "Nothing")),
               "Expert load draws from PostgreSQL (%s)" % d[:120])
            png = app3.shot("postgresql-expert-load")
            if area is not None:
                x, y, w, h = app3.extents(area)
                ok(distinct_colours(png, x, y, w, h) > 8, "and shows a figure (colours in its area)")
            leaked = [acc for acc, _ in walk(app3.frame()) if "s3cret-pw" in (name_of(acc) + text_of(acc))]
            ok(not leaked, "the password appears nowhere in the window (%d places)" % len(leaked))
            ini = os.path.join(env["XDG_CONFIG_HOME"], "moescope", "workbench.ini")
            app3.app_action("quit")
            try:
                rc = app3.proc.wait(15)
            except subprocess.TimeoutExpired:
                app3.proc.kill()
                rc = None
            app3.ok_exit(rc, "quits (exit %s)" % rc)
            text = open(ini).read() if os.path.exists(ini) else ""
            ok("s3cret-pw" not in text, "the password is not written to the settings")
        elif app3.proc.poll() is None:
            app3.proc.kill()

    print("1..%d" % n_run, flush=True)
    return 1 if n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
