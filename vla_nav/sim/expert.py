"""The expert driver that labels simulated episodes with (linear.x, angular.z).

A policy learns these labels from 8 camera frames (+ the GoalProgress state), so the expert is
smooth and predictable from what the camera sees rather than optimal:
  goto     steer toward the target with a proportional heading law; when the straight way is
           blocked, take the free heading nearest to the target's (a sweep of candidate headings
           against the obstacles' footprints, sticking to one side once chosen); speed follows a
           constant-deceleration profile that ends exactly `stop_distance` from the target centre,
           and is scaled down by cos^2 of the heading error, so big turns happen slowly;
  turn     angular speed profile that brakes to zero at the target angle (from the state's yaw
           change), no translation;
  forward  linear speed profile that brakes to zero at the distance (from the state's distance),
           holding the start heading;
  stop     zeros.
Every output is rate-limited against the robot's current twist (so it is valid from any state:
the expert can relabel states a policy drove into) and stays inside the chunk executor's limits.

`Expert` drives the v1 world; `PlanningExpert` (below) the v2 world: the same laws plus a search
(turn in place until the target is seen) and grid A* detours for goto; NavSim hands it the
current step of a multi-step task.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_nav.sim.layout import ROBOT_RADIUS, Layout, free_distance
from vla_nav.sim.robot import RobotLimits
from vla_nav.sim.scenarios import NOMINAL_SPEED, NOMINAL_TURN_RATE, Scenario


@dataclass(frozen=True)
class ExpertConfig:
    cruise_speed: float = NOMINAL_SPEED     # m/s
    turn_rate: float = NOMINAL_TURN_RATE    # rad/s, the largest |angular| the expert asks for
    linear_accel: float = 0.5               # m/s^2, rate limit while speeding up
    linear_decel: float = 0.8               # m/s^2, rate limit while slowing down
    linear_brake: float = 0.35              # m/s^2, the planned stopping profile (< linear_decel)
    angular_accel: float = 1.5              # rad/s^2
    angular_decel: float = 2.5              # rad/s^2
    angular_brake: float = 1.0              # rad/s^2, the planned turn-stopping profile
    heading_gain: float = 1.5               # rad/s per rad of heading error
    lookahead: float = 1.2                  # m of free straight path wanted ahead
    clearance: float = 0.12                 # m kept between the robot and obstacles
    heading_step: float = math.radians(3.0)
    max_detour: float = math.radians(90.0)

    def check_within(self, limits: RobotLimits) -> None:
        """The expert must never ask for more than the executor (and the robot) allow."""
        pairs = ((self.cruise_speed, limits.max_linear_vel, 'cruise_speed'),
                 (self.turn_rate, limits.max_angular_vel, 'turn_rate'),
                 (self.linear_accel, limits.max_linear_accel, 'linear_accel'),
                 (self.linear_decel, limits.max_linear_decel, 'linear_decel'),
                 (self.angular_accel, limits.max_angular_accel, 'angular_accel'),
                 (self.angular_decel, limits.max_angular_decel, 'angular_decel'))
        for value, limit, name in pairs:
            if not 0.0 < value <= limit:
                raise ValueError(f'expert {name}={value} must be in (0, {limit}] (chunk_executor limit)')
        if not 0.0 < self.linear_brake <= self.linear_decel:
            raise ValueError('expert linear_brake must be in (0, linear_decel]')
        if not 0.0 < self.angular_brake <= self.angular_decel:
            raise ValueError('expert angular_brake must be in (0, angular_decel]')


def _wrap(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))


def _rate_limit(current: float, wanted: float, accel: float, decel: float, dt: float) -> float:
    slowing = abs(wanted) < abs(current) or current * wanted < 0.0
    step = (decel if slowing else accel) * dt
    return current + float(np.clip(wanted - current, -step, step))


class Expert:
    """`action(scenario, layout, pose, twist, state, dt) -> (linear, angular)`."""

    ARRIVED = 0.01            # m left to the stop point that counts as arrived
    ANGLE_DONE = math.radians(1.0)

    def __init__(self, config: ExpertConfig | None, limits: RobotLimits):
        self.config = config or ExpertConfig()
        self.config.check_within(limits)
        self._detour_side = 0.0

    def reset(self) -> None:
        self._detour_side = 0.0

    def action(self, scenario: Scenario | None, layout: Layout, pose, twist, state, dt: float
               ) -> tuple[float, float]:
        wanted = (0.0, 0.0)
        if scenario is not None:
            if scenario.kind == 'goto':
                wanted = self._goto(scenario, layout, pose)
            elif scenario.kind == 'turn':
                wanted = self._turn(scenario, state)
            elif scenario.kind == 'forward':
                wanted = self._forward(scenario, state)
        cfg = self.config
        linear = _rate_limit(twist[0], wanted[0], cfg.linear_accel, cfg.linear_decel, dt)
        angular = _rate_limit(twist[1], wanted[1], cfg.angular_accel, cfg.angular_decel, dt)
        return float(linear), float(angular)

    # -- tasks --------------------------------------------------------------------------------
    def _braking_speed(self, remaining: float, brake: float, cruise: float) -> float:
        return min(cruise, math.sqrt(2.0 * brake * max(remaining, 0.0)))

    def _goto(self, scenario: Scenario, layout: Layout, pose) -> tuple[float, float]:
        cfg = self.config
        x, y, yaw = pose
        tx, ty = scenario.target.position
        remaining = math.hypot(tx - x, ty - y) - scenario.parameters['stop_distance']
        if remaining <= self.ARRIVED:
            return 0.0, 0.0
        goal_heading = math.atan2(ty - y, tx - x)
        heading = self._free_heading(layout, scenario, x, y, goal_heading, remaining)
        error = _wrap(heading - yaw)
        angular = float(np.clip(cfg.heading_gain * error, -cfg.turn_rate, cfg.turn_rate))
        alignment = max(0.0, math.cos(error)) ** 2 if abs(error) < math.radians(75) else 0.0
        # The robot moves along its current yaw while it turns toward `heading`: never faster than
        # it could stop before whatever lies that way.
        room = free_distance(layout, x, y, yaw, ROBOT_RADIUS + cfg.clearance, (scenario.target,))
        room = min(remaining, room)
        linear = self._braking_speed(room, cfg.linear_brake, cfg.cruise_speed) * alignment
        return linear, angular

    def _free_heading(self, layout: Layout, scenario: Scenario, x: float, y: float,
                      goal_heading: float, remaining: float) -> float:
        """The collision-free heading nearest the goal's, preferring the side already taken."""
        cfg = self.config
        reach = max(0.3, min(remaining, cfg.lookahead))
        ignore = (scenario.target,)

        body = ROBOT_RADIUS + cfg.clearance

        def clear(heading: float) -> bool:
            # Objects must leave the whole look-ahead free; a wall only the first half metre (the
            # robot will turn along it later).
            return (free_distance(layout, x, y, heading, body, ignore, walls=False) >= reach
                    and free_distance(layout, x, y, heading, body, objects=False) >= min(reach, 0.5))

        if clear(goal_heading):
            return goal_heading
        steps = int(cfg.max_detour / cfg.heading_step)
        # Once a side is chosen it is kept for the episode: flipping sides mid-detour would weave.
        sides = (self._detour_side, -self._detour_side) if self._detour_side else (1.0, -1.0)
        for k in range(1, steps + 1):
            for side in sides:
                heading = goal_heading + side * k * cfg.heading_step
                if clear(heading):
                    self._detour_side = side
                    return heading
        return goal_heading  # boxed in: face the goal and let the speed law creep

    def _turn(self, scenario: Scenario, state) -> tuple[float, float]:
        cfg = self.config
        remaining = scenario.parameters['angle'] - float(state[3])
        if abs(remaining) <= self.ANGLE_DONE:
            return 0.0, 0.0
        speed = self._braking_speed(abs(remaining), cfg.angular_brake, cfg.turn_rate)
        return 0.0, math.copysign(speed, remaining)

    def _forward(self, scenario: Scenario, state) -> tuple[float, float]:
        cfg = self.config
        remaining = scenario.parameters['distance'] - float(state[2])
        if remaining <= self.ARRIVED:
            return 0.0, 0.0
        linear = self._braking_speed(remaining, cfg.linear_brake, cfg.cruise_speed)
        angular = float(np.clip(-cfg.heading_gain * float(state[3]), -cfg.turn_rate, cfg.turn_rate))
        return linear, angular


class PlanningExpert(Expert):
    """The v2 world's expert: v1's turn / forward / stop laws, and a goto that searches and plans.

    goto, per step: (1) search: while the target has not been seen (rooms.visible: in the camera's
    field of view, not behind a wall or a tall object), turn left in place, at most one full turn;
    (2) go: when the straight way to the stop point is free, v1's heading law and braking profile;
    otherwise follow a grid A* path (rooms.GridPlanner, replanned when the robot is off it) with a
    look-ahead point. The speed is always capped by the free room ahead (walls and objects), so the
    robot can stop before anything it is heading at. Same rate limits as v1, within RobotLimits.
    From states only a driving policy leads to (DAgger labels): inside an object's footprint
    circle it may back off or slide but not get closer, and where its way has had no room for
    STUCK_S it drives ESCAPE_M out along the free heading nearest its own, then plans again.

    Keep left: the planner prices steps right of the straight line to the target KEEP_LEFT times
    more, so an obstacle is passed on the left unless the right way is clearly shorter (v1's
    heading sweep also tries left first). Which way an unbiased A* goes round a crate that sits
    across the line depends on details the camera cannot tell apart; its labels then point both
    ways in states that look alike, and a regression head learns their mean: straight on or stop.
    """

    LOOKAHEAD = 0.6   # m along the path
    KEEP_LEFT = 1.0   # extra cost per metre right of the line to the target (GridPlanner.plan)
    STUCK_S = 1.5     # s facing its way with no room to drive before it backs out (_unfreeze)
    ESCAPE_M = 0.3    # m driven along the way out before it plans again
    SWING_M = 0.15    # m off the straight line that counts as passing on a side (way_round)

    def reset(self) -> None:
        super().reset()
        self._step = None
        self._seen = False
        self._searched = 0.0
        self._last_yaw = 0.0
        self._path = None
        self._frozen, self._stuck, self._escape, self._anchor = False, 0.0, None, None

    def action(self, scenario, layout, pose, twist, state, dt):
        from vla_nav.sim.rooms import RoomLayout
        if scenario is None or scenario.kind != 'goto' or not isinstance(layout, RoomLayout):
            return super().action(scenario, layout, pose, twist, state, dt)
        if scenario is not getattr(self, '_step', None):
            self.reset()
            self._step, self._last_yaw = scenario, pose[2]
        wanted = self._unfreeze(layout, scenario.target, pose, self._goto_planned(scenario, layout, pose), dt)
        cfg = self.config
        linear = _rate_limit(twist[0], wanted[0], cfg.linear_accel, cfg.linear_decel, dt)
        angular = _rate_limit(twist[1], wanted[1], cfg.angular_accel, cfg.angular_decel, dt)
        return float(linear), float(angular)

    @property
    def searching(self) -> bool:
        """Whether the current goto step is still looking for its target."""
        return getattr(self, '_step', None) is not None and not self._seen

    def _room_ahead(self, layout, x, y, heading, ignore, margin: float, reach: float = 2.0) -> float:
        """Metres the robot can drive along `heading` keeping `margin` to everything (less where
        it is already closer: it may always move away). Closer than the body's own radius to a
        footprint circle (a crate's circle reaches past its corners, so the robot can stand
        there untouched, driven by a policy): the gap it has now may not shrink, so it can
        still back off or slide past instead of freezing in place (as rooms.free_distance)."""
        from vla_nav.sim.rooms import clearance
        body = ROBOT_RADIUS + margin
        now = clearance(layout, x, y, ignore)
        floor = ROBOT_RADIUS + 0.01
        threshold = max(min(body, now - 0.03), floor) if now - 1e-3 >= floor else now - 1e-3
        cos_h, sin_h = math.cos(heading), math.sin(heading)
        step = 0.05
        for k in range(1, int(reach / step) + 1):
            if clearance(layout, x + k * step * cos_h, y + k * step * sin_h, ignore) < threshold:
                return (k - 1) * step
        return reach

    def _goto_planned(self, scenario, layout, pose) -> tuple[float, float]:
        from vla_nav.sim.rooms import visible
        cfg = self.config
        x, y, yaw = pose
        target = scenario.target
        self._searched += abs(_wrap(yaw - self._last_yaw))
        self._last_yaw = yaw
        tx, ty = target.position
        distance = math.hypot(tx - x, ty - y)
        stop_distance = scenario.parameters['stop_distance']
        remaining = distance - stop_distance
        self._frozen = False
        if remaining <= self.ARRIVED:
            return 0.0, 0.0
        if not self._seen and visible(layout, pose, target):
            self._seen = True
        if not self._seen and self._searched < 2 * math.pi:
            return 0.0, cfg.turn_rate
        self._seen = True   # searched a full turn: go by the map (explore along the plan)
        ignore = (target,)
        goal_heading = math.atan2(ty - y, tx - x)
        if _straight_way_free(layout, x, y, target, stop_distance):
            heading, left = goal_heading, remaining
            self._path = None
        else:
            heading, left = self._follow(layout, target, x, y, stop_distance)
            if heading is None:
                heading, left = goal_heading, remaining
        linear, angular = self._steer(layout, x, y, yaw, heading, left, ignore)
        if self._path is not None and linear < 1e-6 and abs(angular) < 0.05:
            # Facing the look-ahead point, but the chord to it grazes something (it cuts a
            # corner of the path): aim at the path just ahead instead of standing still.
            near, _ = self._follow(layout, target, x, y, stop_distance, lookahead=0.2)
            if near is not None:
                linear, angular = self._steer(layout, x, y, yaw, near, left, ignore)
        self._frozen = linear < 1e-6   # no room to drive (or turning toward its way)
        return linear, angular

    def _unfreeze(self, layout, target, pose, wanted, dt) -> tuple[float, float]:
        """`wanted`, or a way out where the plan's way has had no room for STUCK_S (a policy left
        the robot at a wall's corner or a crate's side, where the chord to the path is blocked and
        the re-aim turns back and forth): the free heading nearest its own, left first, driven
        ESCAPE_M; then it plans again from there."""
        x, y, yaw = pose
        ignore = (target,)
        if self._escape is not None:
            heading, sx, sy = self._escape
            if math.hypot(x - sx, y - sy) < self.ESCAPE_M:
                linear, angular = self._steer(layout, x, y, yaw, heading, self.ESCAPE_M, ignore)
                if linear > 1e-6 or abs(_wrap(heading - yaw)) > math.radians(5):
                    return linear, angular
            self._escape, self._path, self._stuck, self._anchor = None, None, 0.0, None  # plan again
            return wanted
        # stuck: no room to drive while it stays put and faces about the same way (a turn in
        # place toward its way sweeps the yaw; the re-aim at a blocked chord only twitches)
        anchor = self._anchor
        if (self._frozen and anchor is not None and math.hypot(x - anchor[0], y - anchor[1]) < 0.05
                and abs(_wrap(yaw - anchor[2])) < math.radians(20)):
            self._stuck += dt
        else:
            self._stuck, self._anchor = 0.0, ((x, y, yaw) if self._frozen else None)
        if self._stuck < self.STUCK_S:
            return wanted
        for k in range(1, 10):
            for side in (1.0, -1.0):
                heading = yaw + side * math.radians(20 * k)
                room = self._room_ahead(layout, x, y, heading, ignore, 0.02, reach=self.ESCAPE_M)
                if room >= self.ESCAPE_M:
                    self._escape = (heading, x, y)
                    return self._steer(layout, x, y, yaw, heading, self.ESCAPE_M, ignore)
        self._stuck, self._anchor = 0.0, None
        return wanted

    def _steer(self, layout, x, y, yaw, heading, left, ignore) -> tuple[float, float]:
        """v1's heading law and braking profile toward `heading` with `left` metres to go."""
        cfg = self.config
        error = _wrap(heading - yaw)
        angular = float(np.clip(cfg.heading_gain * error, -cfg.turn_rate, cfg.turn_rate))
        alignment = max(0.0, math.cos(error)) ** 2 if abs(error) < math.radians(75) else 0.0
        # a path found only with a smaller margin (a narrow gap) is driven with that margin
        margin = cfg.clearance if self._path is None else self._path_margin
        room = min(left, self._room_ahead(layout, x, y, yaw, ignore, margin))
        return self._braking_speed(room, cfg.linear_brake, cfg.cruise_speed) * alignment, angular

    def _plan(self, layout, target, x, y, stop_distance):
        """(the keep-left A* path to `target`, the margin it was found with), the widest margin
        first; (None, None) when no margin leaves a way."""
        from vla_nav.sim.rooms import GridPlanner
        for margin in (self.config.clearance, 0.06, 0.02):
            planner = GridPlanner(layout, ROBOT_RADIUS + margin, ignore=(target,))
            path = planner.plan((x, y), target.position, goal_radius=stop_distance,
                                keep_left=self.KEEP_LEFT)
            if path is not None:
                return path, margin
        return None, None

    def way_round(self, layout, target, pose, stop_distance: float) -> str | None:
        """Which side of the straight line to `target` the expert's plan from `pose` swings out
        to: 'left' or 'right' (its waypoint farthest from the line, more than SWING_M out), or
        None when the straight way is free or there is no way. Keep-left makes it 'left' unless
        the left is closed (a wall or an object leaves no room), so on the detour tier 'right'
        marks the scenes where the camera must show that the usual side is shut; the suite
        reports detour by it (report.detour_by_side)."""
        x, y = pose[0], pose[1]
        if _straight_way_free(layout, x, y, target, stop_distance):
            return None
        path, _ = self._plan(layout, target, x, y, stop_distance)
        if path is None:
            return None
        bearing = math.atan2(target.position[1] - y, target.position[0] - x)
        offsets = [(math.cos(bearing) * (py - y) - math.sin(bearing) * (px - x)) for px, py in path]
        swing = max(offsets, key=abs)
        if abs(swing) <= self.SWING_M:
            return None
        return 'left' if swing > 0 else 'right'

    def _follow(self, layout, target, x, y, stop_distance, lookahead: float = LOOKAHEAD):
        """(heading to the point `lookahead` metres along the A* path, path length left), or
        (None, 0)."""
        path = self._path
        if path is not None and _distance_to_path(path, x, y)[0] > 0.4:
            path = None
        if path is None:
            path, margin = self._plan(layout, target, x, y, stop_distance)
            if path is not None:
                self._path_margin = margin
            self._path = path
        if path is None or len(path) < 2:
            return None, 0.0
        _, index, t = _distance_to_path(path, x, y)
        # walk LOOKAHEAD along the path from the closest point
        ax, ay = path[index]
        bx, by = path[index + 1]
        px, py = ax + t * (bx - ax), ay + t * (by - ay)
        left_total = math.hypot(bx - px, by - py) + sum(
            math.hypot(path[i + 1][0] - path[i][0], path[i + 1][1] - path[i][1])
            for i in range(index + 1, len(path) - 1))
        budget, i, cx, cy = lookahead, index, px, py
        while True:
            nx, ny = path[i + 1]
            seg = math.hypot(nx - cx, ny - cy)
            if seg >= budget or i + 2 >= len(path):
                f = min(1.0, budget / seg) if seg > 1e-9 else 1.0
                lx, ly = cx + f * (nx - cx), cy + f * (ny - cy)
                break
            budget -= seg
            cx, cy, i = nx, ny, i + 1
        return math.atan2(ly - y, lx - x), left_total


def _straight_way_free(layout, x, y, target, stop_distance: float) -> bool:
    """Is the straight line from (x, y) to the point `stop_distance` short of the target free
    for the robot's body plus a small margin (the expert drives it without a plan)?"""
    from vla_nav.sim.rooms import line_is_free
    tx, ty = target.position
    bearing = math.atan2(ty - y, tx - x)
    stop_point = (tx - stop_distance * math.cos(bearing), ty - stop_distance * math.sin(bearing))
    return line_is_free(layout, (x, y), stop_point, ROBOT_RADIUS + 0.06, (target,))


def _distance_to_path(path, x, y) -> tuple[float, int, float]:
    """(distance, segment index, position along it) of the path point closest to (x, y)."""
    best = (math.inf, 0, 0.0)
    for i in range(len(path) - 1):
        (ax, ay), (bx, by) = path[i], path[i + 1]
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / length2))
        d = math.hypot(x - ax - t * dx, y - ay - t * dy)
        if d < best[0]:
            best = (d, i, t)
    return best
