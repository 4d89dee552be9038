"""Code shared by every service: pure alert decoding now, settings and I/O helpers later."""
