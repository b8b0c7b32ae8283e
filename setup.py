# Kept at the root as the JupyterLab extension template does (for tools that look for it);
# the build is defined in pyproject.toml.
__import__("setuptools").setup()
