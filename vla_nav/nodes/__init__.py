"""vla_nav.nodes"""
