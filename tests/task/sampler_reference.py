"""An independent Python implementation of zoobench's task sampler (portable
mt19937_64, FNV-1a + splitmix64 stream seeds, rejection sampling, Fisher-Yates)
that must reproduce the index lists pinned in test_sampler.cpp."""
M64 = (1 << 64) - 1


class MT19937_64:
    def __init__(self, seed):
        self.mt = [0] * 312
        self.mt[0] = seed & M64
        for i in range(1, 312):
            prev = self.mt[i - 1]
            self.mt[i] = (6364136223846793005 * (prev ^ (prev >> 62)) + i) & M64
        self.idx = 312

    def _twist(self):
        upper, lower = ~((1 << 31) - 1) & M64, (1 << 31) - 1
        for i in range(312):
            x = (self.mt[i] & upper) | (self.mt[(i + 1) % 312] & lower)
            xa = x >> 1
            if x & 1:
                xa ^= 0xB5026F5AA96619E9
            self.mt[i] = self.mt[(i + 156) % 312] ^ xa
        self.idx = 0

    def __call__(self):
        if self.idx >= 312:
            self._twist()
        y = self.mt[self.idx]
        self.idx += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000 & M64
        y ^= (y << 37) & 0xFFF7EEE000000000 & M64
        return (y ^ (y >> 43)) & M64


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def derive_seed(seed, name, extra=0):
    h = 1469598103934665603
    for c in name.encode():
        h = ((h ^ c) * 1099511628211) & M64
    return splitmix64(splitmix64(seed ^ h) ^ splitmix64((extra + 0x51ED2701) & M64))


def below(gen, n):
    if n <= 1:
        return 0
    limit = M64 - M64 % n
    while True:
        x = gen()
        if x < limit:
            return x % n


def shuffle(gen, v):
    for i in range(len(v), 1, -1):
        j = below(gen, i)
        v[i - 1], v[j] = v[j], v[i - 1]


def sample(labels, split, names, dataset, shots, seed, val_fraction=0.2, classes=None, test_per_class=0):
    ids = list(range(len(names))) if classes is None else [names.index(c) for c in classes]
    n_val = min(shots - 1, int(val_fraction * shots + 0.5))
    train, val, test = [], [], []
    for c in ids:
        tr = [i for i in range(len(labels)) if labels[i] == c and split[i] == 0]
        te = [i for i in range(len(labels)) if labels[i] == c and split[i] == 1]
        g = MT19937_64(derive_seed(seed, f"{dataset}/{names[c]}", 0))
        shuffle(g, tr)
        val += tr[:n_val]
        train += tr[n_val:shots]
        if 0 < test_per_class < len(te):
            g = MT19937_64(derive_seed(seed, f"{dataset}/{names[c]}", 1))
            shuffle(g, te)
            te = sorted(te[:test_per_class])
        test += te
    return train, val, test


# The C++ standard fixes mt19937_64's 10000th output for the default seed.
g = MT19937_64(5489)
for _ in range(9999):
    g()
assert g() == 9981545732273789042, "mt19937_64 reference value"

labels = [i % 3 for i in range(75)]
split = [0 if i < 60 else 1 for i in range(75)]
names = ["zero", "one", "two"]
train, val, _ = sample(labels, split, names, "synthetic", 3, 0)
assert train == [24, 51, 7, 25, 32, 5], train
assert val == [15, 49, 38], val
assert sample(labels, split, names, "synthetic", 3, 7)[0] == [51, 48, 52, 37, 5, 11]
train, _, test = sample(labels, split, names, "synthetic", 2, 1, classes=["two", "zero"], test_per_class=2)
assert train == [59, 20, 39, 33], train
assert test == [62, 68, 66, 72], test
print("sampler reference: the independent implementation reproduces every pinned list")
