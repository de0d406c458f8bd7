/* model_params.c -- prints the parameter counts of foldline's models, for
 * tests/torch/test_param_counts.py to compare with torchvision's. Reads one
 * model a line from stdin:
 *     BACKBONE IN_CHANNELS CLASSES HEAD HIDDEN ACT FREEZE
 * and prints for each:  TOTAL TRAINABLE FEATURE_DIM  (or "error: ..."). */
#include <stdio.h>

#include "trainer/torch/bridge.h"

int main(void)
{
    char backbone[32], head[16], act[16], line[256];
    int in_channels, classes, hidden, freeze;
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, "%31s %d %d %15s %d %15s %d", backbone, &in_channels, &classes, head, &hidden, act, &freeze) !=
            7)
            continue;
        fl_model_spec s = {.backbone = backbone,
                           .in_channels = in_channels,
                           .height = 32,
                           .width = 32,
                           .num_classes = classes,
                           .head_type = head,
                           .head_hidden = hidden,
                           .head_act = act,
                           .freeze_backbone = freeze,
                           .optimizer = "adam",
                           .lr = 1e-3,
                           .mean = {0.5f, 0.5f, 0.5f},
                           .std = {0.5f, 0.5f, 0.5f},
                           .seed = 1,
                           .device = "cpu"};
        fl_model *m;
        fl_error err;
        if (fl_model_new(&s, &m, &err)) {
            printf("error: %s\n", err.msg);
            continue;
        }
        printf("%lld %lld %d\n", (long long)fl_model_num_params(m, 0), (long long)fl_model_num_params(m, 1),
               fl_model_feature_dim(m));
        fflush(stdout);
        fl_model_free(m);
    }
    return 0;
}
