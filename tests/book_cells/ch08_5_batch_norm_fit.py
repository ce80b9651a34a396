# Section 8.5's training cells, run in the namespace of ch08_5_batch_norm.py.
trainer = d2l.Trainer(max_epochs=10, num_gpus=1)  # noqa: F821
data = d2l.FashionMNIST(batch_size=128)  # noqa: F821
model = BNLeNetScratch(lr=0.1)  # noqa: F821
model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)  # noqa: F821
trainer.fit(model, data)

print(model.net[1].gamma.reshape((-1,)), model.net[1].beta.reshape((-1,)))

trainer = d2l.Trainer(max_epochs=10, num_gpus=1)  # noqa: F821
data = d2l.FashionMNIST(batch_size=128)  # noqa: F821
model = BNLeNet(lr=0.1)  # noqa: F821
model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)  # noqa: F821
trainer.fit(model, data)
