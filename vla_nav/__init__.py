"""vla_nav: vision-language-action navigation for ROS 2 (see README.md)."""

__version__ = '0.1.0'
