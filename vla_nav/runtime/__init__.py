"""vla_nav.runtime"""
