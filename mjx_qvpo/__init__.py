"""mjx_qvpo: QVPO (diffusion-policy online RL) on MuJoCo MJX, with the learner and N environments in one compiled training step."""
