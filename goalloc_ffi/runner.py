"""``goalloc run``: a command under goalloc, and what it leaves behind.

A RunPlan is made (and every input checked) before the command starts:
the library, the options (a trial run under them: the library's own
warnings refuse them), the output paths (absolute, in a directory that
exists and can be written, so that a command that changes directory still
writes them where asked). Then the command is exec'd (nothing to collect)
or run and waited for; its statistics files give the report (on stderr,
or --report-file), its size profile is moved into place, and its exit
status is passed through.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from rich.console import Console

from . import stats as st
from .launch import (OPTIONS_ENV, LaunchError, exec_command, exit_status, here, merge_options, option_warnings,
                     preload_env, spawn)


class RunError(ValueError):
    """Bad input to goalloc run, found before the command starts."""


def output_path(value: str, what: str) -> str:
    """value made absolute, after checking that a file can be written there
    (a %p in it is the pid: its directory is checked)."""
    path = os.path.abspath(value)
    parent = os.path.dirname(path)
    if os.path.isdir(path.replace("%p", "1")):
        raise RunError(f"{what} {value}: is a directory")
    if not os.path.isdir(parent):
        raise RunError(f"{what} {value}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"{what} {value}: cannot write in {parent}")
    return path


@dataclass
class RunPlan:
    cmd: Tuple[str, ...]
    env: dict
    report: Optional[str] = None  # "-": stderr; else a file
    report_pid: Optional[int] = None
    stats: Optional[str] = None  # GOALLOC_STATS, absolute (%p: pid)
    profile: Optional[str] = None  # --profile-sizes, absolute
    timeline: Optional[str] = None
    heap_profile: Optional[str] = None  # --heap-profile, absolute
    heap_tmp: Optional[str] = None  # where the processes write theirs when it has no %p
    tmp: List[str] = field(default_factory=list)  # directories removed at the end

    @property
    def waits(self) -> bool:
        """Whether goalloc must outlive the command (else it execs it)."""
        return bool(self.report or self.timeline or (self.profile and "%p" not in self.profile)
                    or self.heap_tmp)


def make_plan(library: str, settings: Sequence[Tuple[str, str]], cmd: Sequence[str], stats: Optional[str] = None,
              report: Optional[str] = None, report_pid: Optional[int] = None, live: bool = False,
              timeline: Optional[str] = None, profile: Optional[str] = None,
              heap_profile: Optional[str] = None, rate: Optional[str] = None) -> RunPlan:
    """Everything goalloc run needs, checked; RunError names what is wrong."""
    pairs = [(k, here(v)) for k, v in settings]  # a table file named relative to here
    if rate is not None:
        if not heap_profile:
            raise RunError("--rate: only with --heap-profile")
        pairs.append(("profile_rate", rate))
    if live or timeline:
        pairs.append(("live", "1"))
    options = merge_options(os.environ.get(OPTIONS_ENV), pairs)
    if options:
        try:
            warnings = option_warnings(library, options)
        except LaunchError as e:
            raise RunError(str(e)) from None
        if warnings:
            raise RunError("; ".join(warnings) + " (nothing was run)")
    plan = RunPlan(tuple(cmd), {}, report, report_pid)
    if stats:
        plan.stats = output_path(stats, "--stats")
    if report and report != "-":
        plan.report = output_path(report, "--report-file")
    if timeline:
        plan.timeline = output_path(timeline, "--timeline")
        output_path(timeline[:-4] + ".json", "--timeline")
    if profile:
        plan.profile = output_path(profile, "--profile-sizes")
    if report and not plan.stats:
        plan.tmp.append(tempfile.mkdtemp(prefix="goalloc-run-"))
        plan.stats = os.path.join(plan.tmp[-1], "stats-%p.json")
    profile_env = plan.profile
    if plan.profile and "%p" not in plan.profile:
        # Without %p every process would write FILE: the children write into
        # a temporary directory and only CMD's own file is kept.
        plan.tmp.append(tempfile.mkdtemp(prefix="goalloc-profile-"))
        profile_env = os.path.join(plan.tmp[-1], "profile-%p.json")
    heap_env = None
    if heap_profile:
        plan.heap_profile = heap_env = output_path(heap_profile, "--heap-profile")
        if "%p" not in plan.heap_profile:  # as with --profile-sizes: CMD's own process's
            plan.heap_tmp = tempfile.mkdtemp(prefix="goalloc-heap-")
            plan.tmp.append(plan.heap_tmp)
            heap_env = os.path.join(plan.heap_tmp, "heap-%p.pb.gz")
    try:
        plan.env = preload_env(os.environ, library, options, plan.stats, profile_env, heap_env)
    except LaunchError as e:
        raise RunError(str(e)) from None
    return plan


def execute(plan: RunPlan) -> int:
    """Runs the plan's command; returns its exit status (or never returns
    when nothing is to be collected: exec)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if not plan.waits:
        exec_command(plan.cmd, plan.env)
    started = time.time() - 1  # files of this run (mtime granularity)
    child = spawn(plan.cmd, plan.env)
    try:
        if plan.timeline:
            from .timeline import record

            record(child, plan.cmd, plan.timeline)
        status = child.wait()
        if plan.profile and "%p" not in plan.profile:
            _keep_profile(plan, child.pid)
        if plan.heap_tmp:
            _keep_heap_profile(plan, child.pid)
        if plan.report:
            report(plan, child, started)
    finally:
        for d in plan.tmp:
            shutil.rmtree(d, ignore_errors=True)
    return exit_status(status)


def _keep_profile(plan: RunPlan, pid: int) -> None:
    assert plan.profile is not None
    written = os.path.join(plan.tmp[-1], f"profile-{pid}.json")
    if os.path.exists(written):
        shutil.move(written, plan.profile)
    else:
        sys.stderr.write(f"goalloc run: {plan.cmd[0]} left no size profile (it did not exit normally)\n")


def _keep_heap_profile(plan: RunPlan, pid: int) -> None:
    assert plan.heap_tmp is not None and plan.heap_profile is not None
    written = os.path.join(plan.heap_tmp, f"heap-{pid}.pb.gz")
    if os.path.exists(written):
        shutil.move(written, plan.heap_profile)
    else:
        sys.stderr.write(f"goalloc run: {plan.cmd[0]} left no heap profile (it did not exit normally)\n")


def _console(plan: RunPlan) -> Console:
    if plan.report == "-":
        return Console(stderr=True)
    return Console(file=open(plan.report or os.devnull, "w"), width=100)


def report(plan: RunPlan, child: "subprocess.Popen[bytes]", started: float) -> None:
    """The summary of the command's own process (or of --report-pid, or of
    its busiest descendant when it never called malloc) and a table of the
    others, on stderr or into --report-file."""
    from .report import load_busiest_first, print_other_processes, print_report

    assert plan.stats is not None
    own = plan.stats.replace("%p", str(child.pid))
    others: List[str] = []
    if "%p" in plan.stats:  # the other processes' files of this run
        others = [f for f in glob.glob(glob.escape(plan.stats).replace("%p", "*"))
                  if f != own and os.path.getmtime(f) >= started]
    loaded = load_busiest_first(([own] if os.path.exists(own) else []) + others)
    console = _console(plan)
    try:
        chosen = _choose(plan, child, loaded, console)
        if chosen is not None:
            print_report(chosen, console=console)
        print_other_processes([s for _, s in loaded if s is not chosen], console)
    finally:
        if console.file is not sys.stderr:
            console.file.close()


def _choose(plan: RunPlan, child: "subprocess.Popen[bytes]", loaded: List[Tuple[str, "st.Stats"]],
            console: Console) -> Optional["st.Stats"]:
    by_pid = {s.pid: s for _, s in loaded}
    name = plan.cmd[0]
    if plan.report_pid is not None:
        if plan.report_pid in by_pid:
            return by_pid[plan.report_pid]
        console.print(f"goalloc run: --report-pid {plan.report_pid}: no statistics of that process among the "
                      f"{len(loaded)} of this run (pids {', '.join(map(str, sorted(by_pid))) or 'none'})",
                      markup=False, highlight=False)
        return None
    if child.pid in by_pid:
        return by_pid[child.pid]
    if not loaded:
        why = "it was killed" if child.returncode < 0 else "it never called malloc and started nothing that did"
        console.print(f"goalloc run: {name} (pid {child.pid}) left no statistics ({why})",
                      markup=False, highlight=False)
        return None
    busiest = loaded[0][1]
    console.print(f"goalloc: {name} (pid {child.pid}) left no statistics (it never called malloc, or did not "
                  f"exit normally); the busiest of its {len(loaded)} allocating descendant(s), pid {busiest.pid}:",
                  markup=False, highlight=False)
    return busiest
