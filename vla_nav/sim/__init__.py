"""vla_nav.sim"""
