/* cli.h — `freshrec` subcommands that talk to Kafka and Redis. Each returns
 * the process exit code (0 ok, 1 failure, 2 usage). */
#ifndef FR_CLI_H
#define FR_CLI_H

/* freshrec replay: produces an interaction file as JSON events. */
int replay_main(int argc, char **argv);
/* freshrec recommend: a user's top k by retrieval score, from Redis. */
int recommend_main(int argc, char **argv);

/* freshrec train for the click-through models (lr, widedeep, dcn). */
int train_ctr_main(int argc, char **argv);
/* freshrec gen --ctr: a click-through stream with a planted interaction. */
int gen_ctr_main(int argc, char **argv);

/* freshrec eval: prequential streaming evaluation of several arms (evalcli.c). */
int eval_main(int argc, char **argv);

#endif
