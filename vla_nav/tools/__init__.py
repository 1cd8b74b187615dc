"""vla_nav.tools"""
