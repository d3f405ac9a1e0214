"""The nndl course's own code (chapter 5: dataset.py, op.py, metric.py, runner.py), kept as the reference
the port is compared against. Changed only where today's Paddle refuses it: `.numpy()[0]` on 0-D tensors
reads `.item()` instead. Everything else, including `total_loss += loss`, is as the course prints it.
"""
import os
import pickle

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.vision.transforms import Normalize


def load_cifar10_batch(folder_path, batch_id=1, mode='train'):
    if mode == 'test':
        file_path = os.path.join(folder_path, 'test_batch')
    else:
        file_path = os.path.join(folder_path, 'data_batch_' + str(batch_id))
    with open(file_path, 'rb') as batch_file:
        batch = pickle.load(batch_file, encoding='latin1')  # trusted: files the tests wrote themselves
    imgs = batch['data'].reshape((len(batch['data']), 3, 32, 32)) / 255.
    labels = batch['labels']
    return np.array(imgs, dtype='float32'), np.array(labels)


class CIFAR10Dataset(paddle.io.Dataset):
    def __init__(self, folder_path, mode='train'):
        if mode == 'train':
            self.imgs, self.labels = load_cifar10_batch(folder_path=folder_path, batch_id=1, mode='train')
            for i in range(2, 5):
                imgs_batch, labels_batch = load_cifar10_batch(folder_path=folder_path, batch_id=i, mode='train')
                self.imgs, self.labels = np.concatenate([self.imgs, imgs_batch]), np.concatenate([self.labels, labels_batch])
        elif mode == 'dev':
            self.imgs, self.labels = load_cifar10_batch(folder_path=folder_path, batch_id=5, mode='dev')
        elif mode == 'test':
            self.imgs, self.labels = load_cifar10_batch(folder_path=folder_path, mode='test')
        self.transform = Normalize(mean=[0.4914, 0.4822, 0.4465], std=[0.2023, 0.1994, 0.2010], data_format='CHW')

    def __getitem__(self, idx):
        img, label = self.imgs[idx], self.labels[idx]
        img = self.transform(img)
        return img, label

    def __len__(self):
        return len(self.imgs)


class ResBlock(nn.Layer):
    def __init__(self, in_channels, out_channels, stride=1, use_residual=True):
        super(ResBlock, self).__init__()
        self.stride = stride
        self.use_residual = use_residual
        self.conv1 = nn.Conv2D(in_channels, out_channels, 3, padding=1, stride=self.stride, bias_attr=False)
        self.conv2 = nn.Conv2D(out_channels, out_channels, 3, padding=1, bias_attr=False)
        if in_channels != out_channels or stride != 1:
            self.use_1x1conv = True
        else:
            self.use_1x1conv = False
        if self.use_1x1conv:
            self.shortcut = nn.Conv2D(in_channels, out_channels, 1, stride=self.stride, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(out_channels)
        self.bn2 = nn.BatchNorm2D(out_channels)
        if self.use_1x1conv:
            self.bn3 = nn.BatchNorm2D(out_channels)

    def forward(self, inputs):
        y = F.relu(self.bn1(self.conv1(inputs)))
        y = self.bn2(self.conv2(y))
        if self.use_residual:
            if self.use_1x1conv:
                shortcut = self.shortcut(inputs)
                shortcut = self.bn3(shortcut)
            else:
                shortcut = inputs
            y = paddle.add(shortcut, y)
        out = F.relu(y)
        return out


def make_first_module(in_channels):
    m1 = nn.Sequential(nn.Conv2D(in_channels, 64, 7, stride=2, padding=3),
                       nn.BatchNorm2D(64), nn.ReLU(),
                       nn.MaxPool2D(kernel_size=3, stride=2, padding=1))
    return m1


def resnet_module(input_channels, out_channels, num_res_blocks, stride=1, use_residual=True):
    blk = []
    for i in range(num_res_blocks):
        if i == 0:
            blk.append(ResBlock(input_channels, out_channels, stride=stride, use_residual=use_residual))
        else:
            blk.append(ResBlock(out_channels, out_channels, use_residual=use_residual))
    return blk


def make_modules(use_residual):
    m2 = nn.Sequential(*resnet_module(64, 64, 2, stride=1, use_residual=use_residual))
    m3 = nn.Sequential(*resnet_module(64, 128, 2, stride=2, use_residual=use_residual))
    m4 = nn.Sequential(*resnet_module(128, 256, 2, stride=2, use_residual=use_residual))
    m5 = nn.Sequential(*resnet_module(256, 512, 2, stride=2, use_residual=use_residual))
    return m2, m3, m4, m5


class Model_ResNet18(nn.Layer):
    def __init__(self, in_channels=3, num_classes=10, use_residual=True):
        super(Model_ResNet18, self).__init__()
        m1 = make_first_module(in_channels)
        m2, m3, m4, m5 = make_modules(use_residual)
        self.net = nn.Sequential(m1, m2, m3, m4, m5,
                                 nn.AdaptiveAvgPool2D(1),
                                 nn.Flatten(),
                                 nn.Linear(512, num_classes))

    def forward(self, x):
        return self.net(x)


class Accuracy(paddle.metric.Metric):
    def __init__(self, is_logist=True):
        self.num_correct = 0
        self.num_count = 0
        self.is_logist = is_logist

    def update(self, outputs, labels):
        if outputs.shape[1] == 1:
            outputs = paddle.squeeze(outputs, axis=-1)
            if self.is_logist:
                preds = paddle.cast((outputs >= 0), dtype='float32')
            else:
                preds = paddle.cast((outputs >= 0.5), dtype='float32')
        else:
            preds = paddle.argmax(outputs, axis=1, dtype='int64')
        labels = paddle.squeeze(labels, axis=-1)
        batch_correct = paddle.sum(paddle.cast(preds == labels, dtype="float32")).item()
        batch_count = len(labels)
        self.num_correct += batch_correct
        self.num_count += batch_count

    def accumulate(self):
        if self.num_count == 0:
            return 0
        return self.num_correct / self.num_count

    def reset(self):
        self.num_correct = 0
        self.num_count = 0

    def name(self):
        return "Accuracy"


class RunnerV3(object):
    def __init__(self, model, optimizer, loss_fn, metric, **kwargs):
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.metric = metric
        self.dev_scores = []
        self.train_epoch_losses = []
        self.train_step_losses = []
        self.dev_losses = []
        self.best_score = 0

    def train(self, train_loader, dev_loader=None, **kwargs):
        self.model.train()
        num_epochs = kwargs.get("num_epochs", 0)
        log_steps = kwargs.get("log_steps", 100)
        eval_steps = kwargs.get("eval_steps", 0)
        save_path = kwargs.get("save_path", "best_model.pdparams")
        custom_print_log = kwargs.get("custom_print_log", None)
        num_training_steps = num_epochs * len(train_loader)
        if eval_steps:
            if self.metric is None:
                raise RuntimeError('Error: Metric can not be None!')
            if dev_loader is None:
                raise RuntimeError('Error: dev_loader can not be None!')
        global_step = 0
        for epoch in range(num_epochs):
            total_loss = 0
            for step, data in enumerate(train_loader):
                X, y = data
                logits = self.model(X)
                loss = self.loss_fn(logits, y)
                total_loss += loss
                self.train_step_losses.append((global_step, loss.item()))
                if log_steps and global_step % log_steps == 0:
                    print(f"[Train] epoch: {epoch}/{num_epochs}, step: {global_step}/{num_training_steps}, loss: {loss.item():.5f}")
                loss.backward()
                if custom_print_log:
                    custom_print_log(self)
                self.optimizer.step()
                self.optimizer.clear_grad()
                if eval_steps > 0 and global_step > 0 and \
                        (global_step % eval_steps == 0 or global_step == (num_training_steps - 1)):
                    dev_score, dev_loss = self.evaluate(dev_loader, global_step=global_step)
                    print(f"[Evaluate]  dev score: {dev_score:.5f}, dev loss: {dev_loss:.5f}")
                    self.model.train()
                    if dev_score > self.best_score:
                        self.save_model(save_path)
                        print(f"[Evaluate] best accuracy performence has been updated: {self.best_score:.5f} --> {dev_score:.5f}")
                        self.best_score = dev_score
                global_step += 1
            trn_loss = (total_loss / len(train_loader)).item()
            self.train_epoch_losses.append(trn_loss)
        print("[Train] Training done!")

    @paddle.no_grad()
    def evaluate(self, dev_loader, **kwargs):
        assert self.metric is not None
        self.model.eval()
        global_step = kwargs.get("global_step", -1)
        total_loss = 0
        self.metric.reset()
        for batch_id, data in enumerate(dev_loader):
            X, y = data
            logits = self.model(X)
            loss = self.loss_fn(logits, y).item()
            total_loss += loss
            self.metric.update(logits, y)
        dev_loss = (total_loss / len(dev_loader))
        dev_score = self.metric.accumulate()
        if global_step != -1:
            self.dev_losses.append((global_step, dev_loss))
            self.dev_scores.append(dev_score)
        return dev_score, dev_loss

    @paddle.no_grad()
    def predict(self, x, **kwargs):
        self.model.eval()
        logits = self.model(x)
        return logits

    def save_model(self, save_path):
        paddle.save(self.model.state_dict(), save_path)

    def load_model(self, model_path):
        model_state_dict = paddle.load(model_path)
        self.model.set_state_dict(model_state_dict)
