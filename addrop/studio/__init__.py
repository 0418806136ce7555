"""What the app shows, without Streamlit: the explorer's analysis (explore/), figures (plots/), the files drawn
from run records (outputs.py), the one-job-at-a-time runner (jobs.py) and the work it runs (background.py).
Imports: addrop.experiments, addrop.engine, addrop.core, config, errors; never streamlit."""
