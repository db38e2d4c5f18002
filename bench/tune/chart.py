"""chart.png of a tuning run, from the result dict alone (matplotlib, imported when drawn)."""


def write_chart(result, path):
    """Throughput (median, min-max) and p99 per shape; a processes x threads heatmap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = [s for s in result["shapes"] if s["rps"]]
    base = result["meta"]["baseline"]
    chosen = (result["choice"]["chosen"] or {}).get("shape")
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), width_ratios=[3, 2])
    xs = range(len(shapes))
    colours = [
        "#2ca02c"
        if s["shape"] == chosen
        else "#7f7f7f"
        if s["shape"] == base
        else "#1f77b4"
        if s["verdict"] == "ok"
        else "#d62728"
        for s in shapes
    ]
    medians = [s["rps"]["median"] for s in shapes]
    errors = [
        [m - s["rps"]["min"] for m, s in zip(medians, shapes, strict=True)],
        [s["rps"]["max"] - m for m, s in zip(medians, shapes, strict=True)],
    ]
    left.bar(xs, medians, color=colours, yerr=errors, capsize=3)
    left.set_xticks(list(xs), [s["shape"] for s in shapes], rotation=45)
    left.set_ylabel("requests/s (median, min-max)")
    left.set_xlabel("processes x threads (green: chosen, grey: baseline, red: left out)")
    twin = left.twinx()
    twin.plot(list(xs), [s["p99_ms"]["median"] for s in shapes], "k.", label="p99 ms")
    bound = result["choice"]["p99_bound_ms"]
    if bound:
        twin.axhline(bound, color="k", linestyle=":", linewidth=1, label="p99 bound")
    twin.set_ylim(bottom=0)
    twin.set_ylabel("p99 latency, ms")
    twin.legend(loc="upper right", fontsize=8)
    processes = sorted({s["processes"] for s in shapes})
    threads = sorted({s["threads"] for s in shapes})
    grid = [[float("nan")] * len(threads) for _ in processes]
    for s in shapes:
        grid[processes.index(s["processes"])][threads.index(s["threads"])] = s["rps"]["median"]
    image = right.imshow(grid, cmap="viridis", origin="lower", aspect="auto")
    right.set_xticks(range(len(threads)), threads)
    right.set_yticks(range(len(processes)), processes)
    right.set_xlabel("threads per process")
    right.set_ylabel("processes")
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if value == value:  # not NaN
                right.text(j, i, f"{value:.0f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=right, label="requests/s (median)")
    fig.suptitle(f"{result['meta']['command']} ({result['meta']['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
