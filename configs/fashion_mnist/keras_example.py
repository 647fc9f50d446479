"""The lectures' Keras example as written (seeds 000/003): its CNN, RMSprop(lr=1e-4, decay=1e-6), its dropout
and as much of its ImageDataGenerator augmentation as the pipeline has ops for, on Fashion-MNIST.

    model: keras_cnn (conv32 same, conv32, pool, drop .25, conv64 same, conv64, pool, drop .25, dense 512,
           drop .5, dense 10; ReLU; Glorot init as Keras)
    opt = RMSprop(lr=0.0001, decay=1e-6)  ->  optimizer="rmsprop" (rho 0.9 = rmsprop_decay),
           schedule="inverse_time": lr / (1 + 1e-6 * iterations), Keras' legacy `decay`
    ImageDataGenerator(...)  ->  augment:
        horizontal_flip=True                       flip_lr
        width/height_shift_range=0.2 (+-5.6 px)    random_crop(padding=5): +-5 px, zero fill (Fashion-MNIST's
                                                   background is 0, so this equals fill_mode='nearest' there)
        rescale=1/255                              the pipeline's x/255 (then per-channel standardisation)
        rotation_range=40, shear_range=0.2, zoom_range=0.2, channel_shift_range=9: await their augment ops
    Differences that remain: Keras' RMSprop adds epsilon 1e-7 outside the square root, optax 1e-8 inside.
    Batch 32 is Keras' fit() default.

Command:  python train.py --config configs/fashion_mnist/keras_example.py --workdir runs/fmnist_keras_example
Expected: 48.93% test top-1 (validation 47.44%) after a short run only: 1 epoch on 5,000 training examples
          (--config.num_train_examples=5000 --config.num_epochs=1, 156 steps of 32; 21 s of CPU, 2 min wall on
          a loaded 2-core machine). RMSprop at 1e-4 learns slowly: the full 30 epochs are not measured (XLA:CPU
          runs this net at ~4 min per 55k-example epoch on 2 cores).
"""

from cnnjax.config import base_config


def get_config():
    config = base_config()
    config.model, config.dataset = "keras_cnn", "fashion_mnist"
    config.model_overrides.act = "relu"
    config.num_epochs, config.batch_size = 30, 32
    config.optimizer, config.learning_rate, config.rmsprop_decay = "rmsprop", 1e-4, 0.9
    config.schedule, config.inverse_time_decay = "inverse_time", 1e-6
    config.augment = "random_crop(padding=5)|flip_lr"
    return config
