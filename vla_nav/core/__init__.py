"""vla_nav.core"""
