"""Adding whole cycles of queued transfers on top of a release, the last step of bypass.

After the re-add, no transfer still queued fits on its own: its payer's headroom is below
its amount. A set of such transfers can still fit together when each payer is credited by
another member, and every set that fits contains a cycle payer -> payee -> ... -> payer.
So this step looks for directed cycles among the queued transfers along which every
member stays at or above its floor: going round the cycle, participant j receives the
amount a_(j-1) and pays a_j, which fits when a_j - a_(j-1) <= headroom_j.

Adding only lowers payers that were checked, so it never breaks a floor and never
releases less than the step before it; unlike dropping, it never cascades. The search is
a depth-first walk from each participant, largest transfers first, bounded in depth
(CYCLE_DEPTH_MAX), in branching per participant (CYCLE_BRANCH_MAX) and in transfers
looked at overall (CYCLE_SCAN_MAX), so a run costs bounded work whatever the queue.
"""

from __future__ import annotations

import bisect

from clearing.lsm_passes import Book, readd

# Longest cycle looked for, in transfers.
CYCLE_DEPTH_MAX = 6
# Outgoing transfers followed per participant on the walk (largest that fit first).
CYCLE_BRANCH_MAX = 6
# Transfers looked at by one run of `add_cycles`, over all its searches.
CYCLE_SCAN_MAX = 20_000


class _Search:
    """The queued transfers by payer, sorted by amount, and the headroom they may use."""

    def __init__(self, book: Book, included: list[bool], projected: list[int]) -> None:
        self.book = book
        self.headroom = [projected[p] - book.floor[p] for p in range(len(book.names))]
        self.out: list[list[int]] = [[] for _ in book.names]
        for i, done in enumerate(included):
            if not done:
                self.out[book.payer[i]].append(i)
        for out in self.out:
            out.sort(key=lambda i: (book.amount[i], i))
        self.sizes = [[book.amount[i] for i in out] for out in self.out]
        self.live = [not done for done in included]
        self.on_path = [False] * len(book.names)
        self.scanned = 0

    def cycle_from(self, start: int) -> list[int] | None:
        """A cycle of queued transfers through `start` that fits, or None."""
        self.on_path[start] = True
        try:
            return self._walk(start, start, None, 0, [])
        finally:
            self.on_path[start] = False

    def _walk(
        self, start: int, v: int, a_in: int | None, depth: int, path: list[int]
    ) -> list[int] | None:
        """Extend `path` (which ends at v, credited a_in) by one transfer out of v."""
        amount, payee = self.book.amount, self.book.payee
        out = self.out[v]
        # At the start nothing is received yet: any amount may open the cycle.
        j = (
            len(out)
            if a_in is None
            else bisect.bisect_right(self.sizes[v], a_in + self.headroom[v])
        )
        followed = 0
        while j > 0 and followed < CYCLE_BRANCH_MAX and self.scanned < CYCLE_SCAN_MAX:
            j -= 1
            i = out[j]
            if not self.live[i]:
                continue
            self.scanned += 1
            w = payee[i]
            if w == start:
                if path and amount[path[0]] - amount[i] <= self.headroom[start]:
                    return [*path, i]
                continue
            if self.on_path[w] or depth + 1 >= CYCLE_DEPTH_MAX:
                continue
            followed += 1
            self.on_path[w] = True
            path.append(i)
            found = self._walk(start, w, amount[i], depth + 1, path)
            path.pop()
            self.on_path[w] = False
            if found is not None:
                return found
        return None

    def take(self, cycle: list[int], included: list[bool], projected: list[int]) -> None:
        book = self.book
        for i in cycle:
            a, p, q = book.amount[i], book.payer[i], book.payee[i]
            self.live[i] = False
            included[i] = True
            projected[p] -= a
            projected[q] += a
            self.headroom[p] -= a
            self.headroom[q] += a


def add_cycles(book: Book, included: list[bool], projected: list[int]) -> list[int]:
    """Add cycles of left-out transfers that fit together, then re-add what fits alone.

    Expects a release the re-add has run on (as bypass leaves it). Repeats over all participants while a round adds something and work remains. Updates
    `included` and `projected` in place and returns the indices added.
    """
    search = _Search(book, included, projected)
    added: list[int] = []
    progress = True
    while progress and search.scanned < CYCLE_SCAN_MAX:
        progress = False
        for start in range(len(book.names)):
            while (cycle := search.cycle_from(start)) is not None:
                search.take(cycle, included, projected)
                added += cycle
                progress = True
        if not progress:
            break  # headroom unchanged since the caller's re-add: nothing more fits alone
        more = readd(book, included, projected)
        for i in more:
            search.live[i] = False
            search.headroom[book.payer[i]] -= book.amount[i]
            search.headroom[book.payee[i]] += book.amount[i]
        added += more
    return added
