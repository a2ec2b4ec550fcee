/* cmd_train.c - `stint train`: trains one model bundle (see st_bundle.h for its layout). */
int cmd_train(int argc, char **argv);
int cmd_train(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 1;
}
