"""vla_nav.data: rosbag2 read/write (`bags`) and episode datasets (`dataset`), via `rosbags`.

    from vla_nav.data import read_episodes, make_windows
    for episode in read_episodes('recordings/', dt=0.1, image_size=(128, 128)):
        frame_index, target, mask = make_windows(episode, window=8, chunk=10)
"""
from vla_nav.data.bags import BagError, BagTopics, EpisodeBagWriter, find_bags, iter_bag_messages
from vla_nav.data.dataset import Episode, make_windows, read_bag_episodes, read_episodes, window_indices

__all__ = ['BagError', 'BagTopics', 'Episode', 'EpisodeBagWriter', 'find_bags', 'iter_bag_messages',
           'make_windows', 'read_bag_episodes', 'read_episodes', 'window_indices']
