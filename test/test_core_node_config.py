"""The typed node configs: built from config/vla_nav.yaml once, validated, round-trip as params."""
import pytest

from vla_nav.config import default_model_dir, load_config, model_world, node_defaults, resolve_sim_world
from vla_nav.core.executor import ExecutorConfig
from vla_nav.core.node_config import (
    SIM_WORLDS,
    ChunkExecutorNodeConfig,
    SimNodeConfig,
    VlaNavConfig,
    VlaNodeConfig,
)
from vla_nav.sim import NavSim, navsim
from vla_nav.sim.robot import RobotLimits


def test_the_yaml_builds_every_node_config_and_round_trips():
    config = load_config()
    assert load_config() is config                     # read once
    assert isinstance(config.chunk_executor.executor, ExecutorConfig)
    for cls, section in ((VlaNodeConfig, config.vla_node), (SimNodeConfig, config.sim_node),
                         (ChunkExecutorNodeConfig, config.chunk_executor)):
        assert cls.from_params(section.to_params()) == section
        assert set(section.to_params()) == set(cls.names())
    assert node_defaults('chunk_executor') == config.chunk_executor.to_params()
    assert config.topics.cmd_vel == config.sim_node.cmd_vel_topic


@pytest.mark.parametrize('section, change, message', [
    ('vla_node', {'image_transport': 'jpeg'}, 'image_transport'),
    ('vla_node', {'max_image_age': 0}, 'max_image_age'),
    ('vla_node', {'stop_words': []}, 'stop_words'),
    ('vla_node', {'stop_words': 'stop'}, 'stop_words'),
    ('vla_node', {'max_instruction_chars': 1.5}, 'max_instruction_chars'),
    ('vla_node', {'device': 'tpu'}, 'device'),
    ('sim_node', {'split': 'val'}, 'split'),
    ('sim_node', {'camera_rate': -1.0}, 'camera_rate'),
    ('sim_node', {'publish_clock': 1}, 'publish_clock'),
    ('sim_node', {'world': 'v3'}, 'world'),
    ('chunk_executor', {'max_linear_accel': 0.0}, 'max_linear_accel'),
    ('chunk_executor', {'cmd_vel_topic': ''}, 'cmd_vel_topic'),
    ('chunk_executor', {'typo_rate': 3.0}, 'typo_rate'),
])
def test_bad_values_are_refused_naming_the_parameter(section, change, message):
    cls = {'vla_node': VlaNodeConfig, 'sim_node': SimNodeConfig,
           'chunk_executor': ChunkExecutorNodeConfig}[section]
    params = dict(getattr(load_config(), section).to_params(), **change)
    with pytest.raises(ValueError, match=message):
        cls.from_params(params)


def test_sim_node_world_follows_the_model_by_default_and_selects_v2():
    config = load_config()
    assert config.sim_node.world == 'model' == node_defaults('sim_node')['world']
    # 'model': the world vla_node's model learned (models/default: its eval.json, v1 if unnamed)
    world = resolve_sim_world(config.sim_node.world, config.vla_node.model)
    assert world == model_world(default_model_dir()) and world in SIM_WORLDS
    assert SIM_WORLDS == ('v1', 'v2') and navsim.WORLDS == SIM_WORLDS   # the simulator's worlds
    v2 = SimNodeConfig.from_params(dict(config.sim_node.to_params(), world='v2'))
    assert v2.world == 'v2' and v2.to_params()['world'] == 'v2'
    # what sim_node builds from it
    robot = {'limits': RobotLimits.from_executor(config.executor), 'stop_words': config.stop_words}
    with NavSim(v2.split, v2.seed, (16, 16), world=v2.world, **robot) as sim:
        assert sim.world_name == 'v2'


def test_numbers_are_coerced_and_sections_must_agree_on_shared_topics():
    config = load_config()
    vla = VlaNodeConfig.from_params(dict(config.vla_node.to_params(), max_image_age=1))
    assert isinstance(vla.max_image_age, float)
    with pytest.raises(ValueError, match='chunk_topic'):
        VlaNavConfig(vla.replace(chunk_topic='/other'), config.chunk_executor, config.sim_node)


def test_robot_limits_are_the_executor_limits():
    executor = load_config().executor
    limits = RobotLimits.from_executor(executor)
    assert (limits.max_linear_vel, limits.min_linear_vel, limits.max_angular_decel) == (
        executor.max_linear_vel, executor.min_linear_vel, executor.max_angular_decel)


def test_one_stop_phrase_list_stops_the_policy_and_the_judge():
    from vla_nav.core.instruction import STOP, classify_instruction
    from vla_nav.sim.scenarios import generate_episode, parse_instruction

    config = load_config()
    layout, _ = generate_episode('test', 0, 0)
    for phrase in ('wait', 'Hold still.', 'stop moving', 'STOP'):
        assert classify_instruction(phrase, config.stop_words, 512).kind == STOP
        assert parse_instruction(phrase, layout, stop_words=config.stop_words).kind == 'stop'
