"""Models shipped inside the package (weights and measured cards); registered in :mod:`nextham.models`."""
