"""History of generated images shown to D (Shrivastava et al.); --pool_size 0 (default) disables it."""

import random

import torch


class ImagePool:
    """Returns a batch mixing current fakes with earlier ones once the pool is full."""

    def __init__(self, pool_size: int) -> None:
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Each image: stored; with probability 0.5 swapped for a stored one once the pool is full."""
        if self.pool_size == 0:
            return images
        returned = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                returned.append(image)
            elif random.uniform(0, 1) > 0.5:
                index = random.randint(0, self.pool_size - 1)
                returned.append(self.images[index].clone())
                self.images[index] = image
            else:
                returned.append(image)
        return torch.cat(returned, 0)
