"""The examples each `itero` subcommand shows under its --help."""

EPILOG = {
    "quickstart": """
        Builds a tiny Qwen2-architecture model and a character tokenizer, warms it up with SFT on
        worked arithmetic solutions, then runs iterative DPO (best-vs-worst pairs of 8 samples, the
        DPO-Positive loss) with a rule-based reward and prints the accuracy table per iteration and
        the path of the plot. About 9 minutes on 2 CPU cores.

        examples:
          itero quickstart
          itero quickstart loop.iterations=3 logging.name=short
          itero quickstart algorithm.loss=sigmoid algorithm.nll_weight=1 logging.name=dpo-nll   # DPO+NLL
          itero quickstart algorithm=raft training.epochs=8 logging.name=raft                    # RAFT
          itero quickstart loop.iterations=8 --force     # extend the finished run by 3 iterations
    """,
    "train": """
        Runs the online loop of CONFIG (YAML), with dotted overrides. Re-running the same command
        resumes a crashed or interrupted run at its first unfinished stage.

        examples:
          itero train configs/quickstart.yaml
          itero train configs/iterative_dpo.yaml algorithm.beta=0.2 loop.iterations=5
          itero train configs/raft.yaml algorithm.restart_from_base=true logging.name=restem

        --dry-run validates CONFIG, prints the stage plan (prompts, samples, tokens to generate,
        optimizer steps) and a GPU memory estimate per device for each model, and warns when it will
        not fit distributed.gpu_memory_gb; it loads no model and writes nothing:
          itero train configs/recipes/online_dpo_r1.yaml --dry-run
          itero train configs/recipes/online_dpo_r1.yaml distributed.num_processes=4 distributed.strategy=zero2 --dry-run
          itero train configs/recipes/samplers_safe_rlhf_mixp.yaml distributed.reference_device=cpu --dry-run
    """,
    "report": """
        Writes RUN_DIR/report.png (accuracy and reward per iteration, the SFT start as a line) and
        RUN_DIR/report.md, and prints the accuracy table.

        example:
          itero report runs/quickstart
    """,
    "eval": """
        Greedy (and with --n, sampled) responses on math benchmarks, graded; writes OUT/eval/<benchmark>.jsonl,
        results.md and results.json (benchmark columns + Average). Rerunning skips finished benchmarks.

        examples:
          itero eval Qwen/Qwen2.5-Math-7B --benchmarks math500,minerva_math,olympiadbench,aime24,amc23 --out runs/base
          itero eval runs/r1/iter_9/checkpoint --n 4 --temperature 0.6 --template qwen25-math-cot --out runs/r1
          itero eval runs/quickstart/base --template plain --max-new-tokens 64 --limit 5 --out runs/tiny
          itero eval MODEL --benchmarks math500,mine=data/mine.jsonl:question:answer --data-dir data
    """,
    "kl": """
        Monte-Carlo KL(policy || base) per response over samples from the policy at temperature 1, with its
        standard error.

        examples:
          itero kl runs/r1/iter_9/checkpoint Qwen/Qwen2.5-Math-7B --prompts data/math500/test.jsonl --n 4
          itero kl runs/quickstart/iter_7/checkpoint runs/quickstart/base --prompts prompts.jsonl --template plain --out kl.json
    """,
    "eval-chat": """
        Responses of a chat policy to a prompt set, each judged against a reference response (the
        dataset's, or another model's) by a reward model or an LLM judge behind an OpenAI-compatible
        endpoint (both orders, answers cached in OUT/judge_cache.jsonl). Reports the win rate (ties
        half), AlpacaEval 2's length-controlled win rate, both with standard errors, and with
        --reward-model / --base the mean reward and KL(policy || base). Writes OUT/chat_eval.json and
        OUT/chat_eval.jsonl (one line per response). See docs/chat-eval.md.

        examples:
          itero eval-chat --policy runs/rto/iter_4/checkpoint --prompts prompts.jsonl --reference-field chosen \\
            --judge rm:runs/rm --out runs/rto/chat/iter_4
          itero eval-chat --policy runs/rto/iter_4/checkpoint --prompts hf:tatsu-lab/alpaca_eval#alpaca_eval@eval \\
            --prompt-field instruction --reference-field output --template chat:{problem} \\
            --judge openai:Qwen/Qwen2.5-72B-Instruct --base-url http://127.0.0.1:8000/v1 --out runs/rto/alpaca
          itero eval-chat --policy runs/rto/iter_4/checkpoint --reference-model runs/rto/base --prompts prompts.jsonl \\
            --judge rm:runs/rm --reward-model runs/rm --base runs/rto/base --n 4 --temperature 1 --out runs/rto/chat/iter_4
          itero compare runs/rto/chat runs/ppo/chat --x kl --metric chat/mean_reward   # reward against KL
    """,
    "compare": """
        Puts several runs side by side: one curve per run of METRIC against the iteration, and a
        table of the start (SFT), best and last value of each run.

        examples:
          itero compare runs/quickstart runs/quickstart-dpo
          itero compare runs/online runs/gshf runs/mixp --metric eval/pass@4 --out runs/samplers
          itero compare runs/raft runs/grpo runs/ppo runs/vineppo --x seconds   # on a common wall-clock budget
          itero compare runs/raft runs/grpo runs/ppo runs/vineppo --x tokens    # ... or tokens generated
          itero compare runs/raft runs/grpo --x tokens --budget 1.38e6          # the value within 1.38 M tokens
          itero compare runs/raft runs/grpo --x seconds --until 5               # the first 5 iterations only
          itero compare runs/raft runs/grpo --metric retest/accuracy            # on fresh problems (itero retest first)
    """,
    "retest": """
        Re-evaluates a run's checkpoints greedily on more problems than its 200-problem test split,
        each paired with the start (the SFT model) problem by problem: accuracy, the difference with
        its 95 % interval, the problems gained and lost, McNemar's exact p-value. For the arithmetic
        task the problems are fresh: after the run's training problems in the task's sequence, so
        neither trained on nor in the test split. Writes RUN_DIR/retest.json; prints a table per run.
        It measures evaluation noise only; a second training seed (loop.seed) measures the rest.

        examples:
          itero retest runs/ppo                                   # every checkpoint, 2000 fresh problems
          itero retest runs/ppo runs/grpo --iterations 4,8 --fresh 5000
          itero retest runs/my-jsonl-run --fresh 0                # the run's own test split, paired
    """,
    "grade": """
        examples:
          itero grade --check --data-dir data                   # accept own golds, reject others' (benchmark folder)
          itero grade --responses out.jsonl --gold-field gold_answer --response-field response --out verdicts.jsonl
    """,
    "train-rm": """
        Trains a Bradley-Terry reward model (loss -log sigmoid(r_chosen - r_rejected), AdamW) on
        preference pairs, one JSON object per line with a prompt, a chosen and a rejected response.
        Prints train / validation pairwise accuracy per epoch; writes OUT/ (model + tokenizer via
        save_pretrained, metrics.json) only when training has finished.

        examples:
          itero train-rm prefs.jsonl --base tiny --out runs/rm-tiny --epochs 3 --lr 1e-3
          itero train-rm prefs.jsonl --base runs/quickstart/base --out runs/rm --val-fraction 0.2
          itero train-rm uf.jsonl --base Qwen/Qwen2.5-0.5B --out runs/rm --chosen-field good --rejected-field bad
    """,
    "bandit": """
        examples:
          itero bandit --setting exact --dtype float32 --out runs/bandit
          itero bandit --setting both --dtype both --samplers DPO-Unif DPO-Mix-P
    """,
    "export": """
        Writes RUN_OR_CHECKPOINT (a run directory: its last checkpoint; or a checkpoint folder) as a
        plain save_pretrained folder with its tokenizer, loadable by transformers or vLLM without
        itero or peft. A LoRA checkpoint (model.lora) holds adapters only: they are merged into
        their base (the SFT checkpoint or the base model) first.

        examples:
          itero export runs/quickstart-lora exported/quickstart-lora
          itero export runs/quickstart-lora/iter_3/checkpoint exported/iter3 --dtype bfloat16
    """,
}
