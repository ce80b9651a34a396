# Section 7.6's training cell, run in the namespace of ch07_6_lenet.py.
trainer = d2l.Trainer(max_epochs=10, num_gpus=1)  # noqa: F821
data = d2l.FashionMNIST(batch_size=128)  # noqa: F821
model = LeNet(lr=0.1)  # noqa: F821
model.apply_init([next(iter(data.get_dataloader(True)))[0]], init_cnn)  # noqa: F821
trainer.fit(model, data)
