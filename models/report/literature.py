"""Others' published results on full MNIST, quoted as static text beside our own numbers."""

from __future__ import annotations

from models.report.tables import Table

LITERATURE = Table(
    "literature",
    "Published results on full MNIST (others' numbers, not measured here)",
    ["Work", "Setting", "Labels", "Without pre-training", "With pre-training"],
    [
        [
            "Hinton, Osindero & Teh 2006",
            "DBN 784-500-500-2000, generative fine-tuning",
            "60,000",
            "—",
            "1.25% error",
        ],
        [
            "Bengio, Lamblin, Popovici & Larochelle 2007",
            "deep net, greedy layer-wise (RBM) pre-training",
            "60,000",
            "2.40% error",
            "1.20% error (DBN)",
        ],
        [
            "Vincent et al. 2010",
            "stacked denoising autoencoder, 3 layers (SdA-3)",
            "60,000",
            "—",
            "1.28% error",
        ],
        [
            "Masci, Meier, Cireşan & Schmidhuber 2011",
            "CNN, convolutional autoencoder initialisation",
            "1,000",
            "7.23% error",
            "6.40% error",
        ],
        [
            "Kingma, Rezende, Mohamed & Welling 2014",
            "M1 (VAE features) + TSVM, semi-supervised",
            "100",
            "—",
            "11.82% error",
        ],
    ],
    note="Quoted from the papers, not reproduced here.",
)


def comparison_note(setting: str) -> str:
    """What our measured setting shares with the published ones, and what it does not."""
    return (
        "What our setting shares with theirs: handwritten digits, the same families of "
        "pre-training (RBM stacks, denoising and convolutional autoencoders) and the "
        "comparison against the same network trained from random weights. What it does not: "
        f"our numbers come from {setting}, not MNIST's 60,000 training and 10,000 test "
        "images; our nets and pre-training and fine-tuning budgets are far smaller; and our "
        "baselines use Glorot/He initialisation and Adam, which the 2006-2010 baselines did "
        "not have. Read the two tables side by side for direction, not for matching numbers."
    )
