"""The export's worker processes: chunks of indices handed out to processes that die with their parent.

Plain processes rather than :class:`multiprocessing.pool.Pool`: a Pool whose worker is killed (say
by the OOM killer) waits forever for the lost task, while here the dead worker's pipe reports it.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["run"]

def run(
    write: Callable[[list[int]], tuple[int, int]],
    indices: Sequence[int],
    chunk_size: int,
    processes: int,
    done: Callable[[int, tuple[int, int]], None],
) -> None:
    """``write`` ``indices`` in chunks of ``chunk_size``, in this process or in ``processes`` worker processes.

    Args:
        write: writes the images of one chunk; returns how many it wrote and their total size in
            bytes. It must pickle where processes are spawned rather than forked.
        indices: the indices to write; sliced one chunk at a time, so it may be a lazy sequence
            (a ``range``, :class:`~.target.Missing`) that never lists them all.
        chunk_size: the indices handed to a worker at a time.
        processes: worker processes (at most one per chunk); 1 writes in this process.
        done: called in this process, for each finished chunk, with its number of indices and what
            ``write`` returned for it (also while the run goes on, so counts are known when it is stopped).

    Raises:
        ChildProcessError: a worker died (killed, out of memory) before it finished its chunks.
        Exception: what ``write`` raised in a worker; the other workers are stopped first.
    """
    num_chunks = -(-len(indices) // chunk_size)
    if min(processes, num_chunks) <= 1:
        for k in range(num_chunks):
            chunk = _chunk(indices, k, chunk_size)
            done(len(chunk), write(chunk))
        return

    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    next_chunk = context.Value("q", 0)
    workers: dict[Any, multiprocessing.process.BaseProcess] = {}
    try:
        with _signals_for_workers():
            for _ in range(min(processes, num_chunks)):
                receive, send = context.Pipe(duplex=False)
                worker = context.Process(
                    target=_work, args=(write, indices, chunk_size, next_chunk, send, os.getpid()), daemon=True
                )
                worker.start()
                send.close()
                workers[receive] = worker
        remaining = num_chunks
        while remaining:
            if not workers:
                raise ChildProcessError(f"the export workers stopped with {remaining} chunks of images unwritten")
            for receive in multiprocessing.connection.wait(list(workers)):
                try:
                    message = receive.recv()
                except EOFError:  # the worker has exited, normally or not, and everything it sent is read
                    _check_exit(workers.pop(receive))
                    continue
                if isinstance(message, BaseException):
                    raise message
                size, counts = message
                remaining -= 1
                done(size, counts)
    finally:
        # On Ctrl-C, SIGTERM or a failed write, stop the others now; the caller removes temp files.
        for worker in workers.values():
            if worker.is_alive():
                worker.terminate()
            worker.join()
        for receive in workers:
            _drain(receive, done)
            receive.close()


def _drain(receive: multiprocessing.connection.Connection, done: Callable[[int, tuple[int, int]], None]) -> None:
    """Report the chunks a stopped worker finished but this process had not read, so that its counts are right."""
    try:
        while receive.poll():  # never blocks: the worker has exited, so its end is closed
            message = receive.recv()
            if not isinstance(message, BaseException):
                done(*message)
    except Exception:  # the end of the pipe, or a message cut short by the interruption
        return


def _check_exit(worker: multiprocessing.process.BaseProcess) -> None:
    worker.join()
    if worker.exitcode:
        cause = (
            f"was killed by {signal.Signals(-worker.exitcode).name}"
            if worker.exitcode < 0
            else f"exited with status {worker.exitcode}"
        )
        raise ChildProcessError(f"export worker {worker.pid} {cause} (out of memory?); re-run to resume")


def _chunk(indices: Sequence[int], k: int, chunk_size: int) -> list[int]:
    return list(indices[k * chunk_size : (k + 1) * chunk_size])


def _work(
    write: Callable[[list[int]], tuple[int, int]],
    indices: Sequence[int],
    chunk_size: int,
    next_chunk: Any,
    send: multiprocessing.connection.Connection,
    parent_pid: int,
) -> None:
    """A worker process: takes the next unwritten chunk until none is left, or the parent is gone."""
    # Ctrl-C reaches the whole process group; only the parent handles it, by terminating us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    import torch

    # The processes are the parallelism; intra-op threads on top of them would oversubscribe.
    torch.set_num_threads(1)
    try:
        while os.getppid() == parent_pid:
            with next_chunk.get_lock():
                k = next_chunk.value
                next_chunk.value += 1
            if k * chunk_size >= len(indices):
                break
            chunk = _chunk(indices, k, chunk_size)
            send.send((len(chunk), write(chunk)))
    except Exception as exc:
        try:
            send.send(exc)
        except Exception:  # an exception that does not pickle
            send.send(RuntimeError(f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


def _die_with_parent() -> None:
    # Without this a SIGKILLed parent leaves its workers writing (Linux only; elsewhere they stop
    # after their current chunk, when they see that their parent changed).
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


@contextmanager
def _signals_for_workers() -> Iterator[None]:
    """Start workers with SIGINT ignored and SIGTERM at its default, whatever the parent installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
