"""Helpers shared by the tests (no tests here): kernels, proxies, stand-ins, ports."""
