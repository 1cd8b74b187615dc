"""vla_nav.model"""
