"""Start here: what AD-DROP is, in four steps and the paper's equations, and where to go next."""
from __future__ import annotations

import streamlit as st

from pages import _common as ui
from pages import _start

c = ui.ctx()

st.title("AD-DROP studio")
st.markdown(
    "Fine-tuning a pre-trained language model on a small data set overfits easily. **AD-DROP** "
    "(*Attribution-Driven Dropout*, Yang et al., NeurIPS 2022) is a dropout for self-attention that does not "
    "drop at random: it finds the attention positions that matter most for the model's current prediction and "
    "drops some of them, so the model has to learn to use the other evidence too. This app lets you see each "
    "step on a sentence of your own and run the paper's experiments on a small scale."
)

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("AD-DROP in four steps")
    st.markdown("**1. A first forward pass** gives the attention maps of every head and the *pseudo label*, "
                "the class the model currently predicts (Eq. 4):")
    st.latex(r"\tilde c = \arg\max_c P_F(c \mid x_i)")
    st.markdown("**2. Attribution.** For every head h, how much the logit of that class would change with each "
                "attention weight, the gradient of the logit with respect to the attention map (Eq. 5):")
    st.latex(r"B_h = \frac{\partial F_{\tilde c}(A)}{\partial A_h}")
    st.markdown("**3. The mask.** Each row of $B_h$ is sorted; the positions with the highest attribution, a "
                "share $p$ of the row, form the *candidate discard region* ($s_{i,j} = 0$ in Eq. 6). Each candidate "
                "is dropped with probability $q$ (Eq. 7), by a mask value of $-\\infty$:")
    st.latex(r"s_{i,j} = \begin{cases}1, & b_{i,j} < \hat b_{i,\,\mathrm{int}(n(1-p))}\\ 0, & \text{otherwise}"
             r"\end{cases}")
    st.latex(r"m_{i,j} = \begin{cases}-\infty, & s_{i,j} + u_{i,j} = 0\\ 0, & \text{otherwise}\end{cases}")
    st.latex(r"u_{i,j}\sim\mathrm{Bernoulli}(1-q)")  # a line of its own: beside m it overflowed the column
    st.markdown("**4. A second forward pass** with the mask added before the softmax (Eq. 1) gives the loss "
                "that is backpropagated:")
    st.latex(r"\begin{aligned}&\mathrm{Attention}(Q_h, K_h, V_h)\\ &\quad= \mathrm{softmax}\!\left("
             r"\frac{Q_h K_h^\top}{\sqrt{d_k}} + M_h\right) V_h\end{aligned}")  # two lines: one overflowed at 1024 px
    st.markdown("**Cross-tuning** (Algorithm 1) alternates plain epochs (1, 3, 5, …) with AD-DROP epochs "
                "(2, 4, …), so high-attribution positions are not dropped all the time.")

with right:
    st.subheader("Start here")
    st.markdown("**Press the button to see AD-DROP on one sentence.** It opens the attribution explorer on the dev "
                "sentence where the AD-DROP mask changes a trained model's prediction most, compared with a random "
                "mask that drops just as many positions (with the demo data, the model is minilm-demo: "
                "all-MiniLM-L6-v2 fine-tuned on the demo set). If no sentence shows a clear difference, the page "
                "says so.")
    if st.button("Show me an example", type="primary", icon=":material/play_arrow:", key="home_start",
                 help="Searches 30 dev sentences of the chosen data set (the demo data when it is not a "
                      "classification task) and opens the explorer on the one where the difference is largest."):
        if _start.load_start_example(c):
            st.switch_page("pages/explorer.py")
    if c.untrained:
        st.caption(f"The model in the sidebar ({c.model_name}) has an untrained head: its predictions sit near "
                   "chance, so what the masks do to them says little. Choose a trained model in the sidebar or "
                   "train one on the explorer page.")

    st.subheader("The pages")
    st.page_link("pages/explorer.py", label="Attribution explorer", icon=":material/grid_on:")
    st.caption("One sentence: attention and attribution maps of every head (GA, IGA, AA, RD), the candidate "
               "region and the sampled mask, and what the mask does to the prediction.")
    st.page_link("pages/prior.py", label="Prior experiment", icon=":material/science:")
    st.caption("The paper's Section 2.2: drop high, low, random or no attention positions while fine-tuning "
               "and watch the training and dev losses part (its Overfitting in view setting: a few minutes on a "
               "CPU).")
    st.page_link("pages/compare.py", label="AD-DROP vs vanilla", icon=":material/compare_arrows:")
    st.caption("Paired runs with the same seeds: curves, dev metrics and the cost of AD-DROP.")
    if (ui.ROOT / "pages" / "sweeps.py").is_file():
        st.page_link("pages/sweeps.py", label="Sweeps", icon=":material/tune:")
        st.caption("Many runs over a grid of settings.")
    st.page_link("pages/replication.py", label="Replication study", icon=":material/fact_check:")
    st.caption("Does AD-DROP help minilm? A preregistered study's answer, read from its run records (the "
               "protocol: docs/replication.md).")
    st.page_link("pages/training.py", label="Across training", icon=":material/timeline:")
    st.caption("A run's probe sentences epoch by epoch: maps, predictions, how much attribution moves.")
    st.page_link("pages/faithfulness.py", label="Deletion curves", icon=":material/trending_down:")
    st.caption("Over many dev sentences: does dropping the top-attributed positions hurt more than dropping "
               "random ones or those with the highest attention?")
    st.page_link("pages/runs.py", label="Runs", icon=":material/folder_open:")
    st.caption("Every run on disk with its size: reopen its curves and metrics, download them, delete runs.")
    st.info("The sidebar chooses the model, the device and the data for every page; the pages that train start "
            "a model already fine-tuned (such as minilm-demo) from its pre-trained base again, and say so. "
            "Training runs in the background: you can leave a page while it runs and come back.",
            icon=":material/info:")
