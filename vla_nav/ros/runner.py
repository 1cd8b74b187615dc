"""Start, spin and stop a node; route Python logging and warnings to the node's ROS logger.

Shutdown. rclpy's default SIGINT handler shuts the context down before a `finally:` runs, so a
zero command published there would fail. `run_node` therefore starts rclpy WITHOUT its signal
handlers (SignalHandlerOptions.NO, Humble and later), catches SIGINT and SIGTERM itself, leaves the
spin loop, calls the node's `on_shutdown()` hook while the context is still valid (the executor
publishes its zero Twist there), then destroys the node and shuts rclpy down. Exit code 0 after a
signal, 1 after a failed start (one fatal log line saying why) or an external shutdown.

Logging. Libraries a node uses (ONNX Runtime provider fallback, torch, vla_nav.runtime's
"falling back to CPU", `warnings.warn`) speak through Python `logging`; run_node installs a
handler on the root logger that forwards every record at WARNING and above (and warnings, via
`logging.captureWarnings`) to the node's ROS logger, so they reach the console, the ROS log files
and /rosout with the node's name.
"""
from __future__ import annotations

import logging
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any

SPIN_POLL_S = 0.1      # how often the spin loop looks at the shutdown flag
ACK_TIMEOUT_S = 0.5    # how long on_shutdown hooks wait for a reliable zero to be acknowledged


class NodeStartupError(RuntimeError):
    """A node cannot start (bad model, bad parameter); the message is the one fatal log line."""


# --- Python logging -> ROS logger ----------------------------------------------------------------
class RosLogHandler(logging.Handler):
    """Forwards Python log records to an rclpy logger (anything with debug/info/warning/error)."""

    def __init__(self, ros_logger, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f'[{record.name}] {record.getMessage()}'
            if record.exc_info:
                text += '\n' + ''.join(traceback.format_exception(*record.exc_info)).rstrip()
            if record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            elif record.levelno >= logging.INFO:
                self.ros_logger.info(text)
            else:
                self.ros_logger.debug(text)
        except Exception:  # logging must never take a node down
            self.handleError(record)


def route_python_logging(ros_logger, level: int = logging.WARNING) -> RosLogHandler:
    """Send Python logging (and `warnings.warn`) at `level` and above to `ros_logger`.

    The handler goes on the root logger and on every logger that exists now and does not
    propagate (torch configures its own); run_node routes again once the node is built, i.e.
    after the engine's libraries were imported. Replaces the handler of an earlier call."""
    root = logging.getLogger()
    quiet = [logger for logger in logging.Logger.manager.loggerDict.values()
             if isinstance(logger, logging.Logger) and not logger.propagate]
    for logger in (root, *quiet):
        for handler in list(logger.handlers):
            if isinstance(handler, RosLogHandler):
                logger.removeHandler(handler)
    handler = RosLogHandler(ros_logger, level)
    for logger in (root, *quiet):
        logger.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    logging.captureWarnings(True)
    return handler


# --- start-up and shutdown -----------------------------------------------------------------------
def init_ros(args: list[str] | None = None, context=None, domain_id: int | None = None) -> None:
    """rclpy.init without rclpy's own SIGINT/SIGTERM handlers (run_node installs its own)."""
    import rclpy
    options: dict[str, Any] = {'args': args}
    if context is not None:
        options['context'] = context
    if domain_id is not None:
        options['domain_id'] = domain_id
    try:
        from rclpy.signals import SignalHandlerOptions
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO, **options)
    except (ImportError, TypeError):   # an rclpy older than Humble
        rclpy.init(**options)


def _spin(node, stop: threading.Event) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while not stop.is_set():
        executor.spin_once(timeout_sec=SPIN_POLL_S)
        if not rclpy.ok():
            return 1
    return 0


def _shutdown(node) -> None:
    import rclpy
    hook = getattr(node, 'on_shutdown', None)
    if hook is not None and rclpy.ok():
        try:
            hook()
        except Exception as error:
            node.get_logger().error(f'on_shutdown failed: {type(error).__name__}: {error}')
    node.destroy_node()


def run_node(make_node: Callable[[], Any], args: list[str] | None = None,
             name: str = 'vla_nav') -> int:
    """init -> build the node -> spin a SingleThreadedExecutor until SIGINT/SIGTERM ->
    node.on_shutdown() (context still valid) -> destroy -> shutdown. Returns the exit code."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    init_ros(args)
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set())
                for signum in (signal.SIGINT, signal.SIGTERM)}
    route_python_logging(rclpy.logging.get_logger(name))
    node, code = None, 0
    try:
        try:
            node = make_node()
        except Exception as error:  # one clear line, never a half-running node
            detail = str(error) if isinstance(error, NodeStartupError) else (
                f'{type(error).__name__}: {error}')
            rclpy.logging.get_logger(name).fatal(f'{name} cannot start: {detail}')
            return 1
        route_python_logging(node.get_logger())
        code = _spin(node, stop)
    except ExternalShutdownException:
        code = 1
    except KeyboardInterrupt:
        pass
    except Exception:  # a bug in a callback: stop cleanly (zero published) and say where
        rclpy.logging.get_logger(name).fatal(f'{name} stopped by an error:\n{traceback.format_exc()}')
        code = 1
    finally:
        if node is not None:
            _shutdown(node)
        rclpy.try_shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


def wait_for_acks(publisher, timeout_s: float = ACK_TIMEOUT_S) -> None:
    """Give a reliable publisher's last message a chance to be delivered before destruction."""
    wait = getattr(publisher, 'wait_for_all_acked', None)
    if wait is not None:
        from rclpy.duration import Duration
        try:
            wait(Duration(nanoseconds=int(timeout_s * 1e9)))
        except Exception:  # best effort: never block shutdown on it
            pass
