"""The diagnostics level rules (vla_nav.core.health), without ROS."""
from vla_nav.core.health import (
    ERROR,
    OK,
    WARN,
    ExecutorPeriod,
    PolicyPeriod,
    executor_health,
    policy_health,
)

RUNNING = PolicyPeriod(active=True, frames=10, chunks=10, policy_errors=0, decode_errors=0, stale=0,
                       p99_ms=5.0, chunk_dt=0.1)


def policy(**changes) -> tuple[int, str]:
    return policy_health(PolicyPeriod(**{**RUNNING.__dict__, **changes}))


def test_policy_ok_running_and_idle():
    assert policy() == (OK, 'running')
    assert policy(active=False, frames=0, chunks=0) == (OK, 'idle: no goal')


def test_policy_error_only_when_errors_starve_an_active_goal():
    assert policy(chunks=0, policy_errors=3, last_error='nan') == (ERROR, 'policy failing: nan')
    assert policy(policy_errors=3)[0] == OK                      # some chunks still came out
    assert policy(active=False, chunks=0, policy_errors=3)[0] == OK


def test_policy_warnings_in_their_order():
    assert policy(frames=0, chunks=0) == (WARN, 'no camera frames')
    assert policy(decode_errors=2) == (WARN, '2 frames could not be decoded')
    level, message = policy(chunks=0, stale=4)
    assert level == WARN and message.startswith('4 frames refused as stale')
    assert policy(stale=4)[0] == OK                             # stale ones among good ones: fine
    level, message = policy(p99_ms=250.0)
    assert level == WARN and 'inference p99 250 ms' in message
    assert policy(p99_ms=199.0)[0] == OK
    # no frames beats undecodable (nothing reached the decoder)
    assert policy(frames=0, chunks=0, decode_errors=1)[1] == 'no camera frames'


BASE = ExecutorPeriod(state='tracking', accepted=5, refused=0, watchdog_trips=0, estop=False)


def executor(**changes) -> tuple[int, str]:
    return executor_health(ExecutorPeriod(**{**BASE.__dict__, **changes}))


def test_executor_levels():
    assert executor() == (OK, 'tracking')
    assert executor(accepted=0, refused=3, last_error='too old') == (ERROR, 'every chunk refused: too old')
    assert executor(refused=3)[0] == OK                          # some accepted: it can move
    assert executor(estop=True, accepted=0, refused=3) == (WARN, 'e-stop latched')
    assert executor(watchdog_trips=1) == (WARN, 'watchdog: no fresh chunk, braked to zero')
    assert executor(state='stopped', accepted=0) == (OK, 'stopped')
