"""What runs in the kernel: the ``%hail`` magics, connect, transfer, the panel."""
